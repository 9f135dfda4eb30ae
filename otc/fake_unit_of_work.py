"""A unit of work in memory, for service-layer tests that need no database.

It keeps the rules of `otc.unit_of_work.BaseUnitOfWork` (the same contract suite runs
against it and the PostgreSQL one): what a committed transaction emitted is in
`published`, a rolled-back one leaves nothing, and the inbox remembers only the
message ids of committed transactions. A test gives it the fake repositories the
code under test reads as attributes.
"""

from __future__ import annotations

from collections.abc import Sequence

from otc.clock import Clock, SystemClock
from otc.unit_of_work import BaseUnitOfWork, Outgoing


class FakeUnitOfWork(BaseUnitOfWork):
    def __init__(
        self, *, producer: str = "fake", clock: Clock | None = None, **repositories: object
    ) -> None:
        super().__init__(producer=producer, clock=clock or SystemClock())
        for name, repository in repositories.items():
            setattr(self, name, repository)
        self.published: list[Outgoing] = []
        self.processed: set[tuple[str, str]] = set()
        self.commits = 0
        self._written: list[Outgoing] = []
        self._marked: set[tuple[str, str]] = set()

    async def _begin(self) -> None:
        self._written = []
        self._marked = set()

    async def _rollback(self) -> None:
        self._written = []
        self._marked = set()

    async def _close(self) -> None:
        pass

    async def _insert_processed(self, consumer: str, event_id: str) -> bool:
        key = (consumer, event_id)
        if key in self.processed or key in self._marked:
            return False
        self._marked.add(key)
        return True

    async def _write_outbox(self, outgoing: Sequence[Outgoing]) -> None:
        self._written.extend(outgoing)

    async def _commit(self) -> None:
        self.published.extend(self._written)
        self.processed |= self._marked
        self.commits += 1
        self._written = []
        self._marked = set()
