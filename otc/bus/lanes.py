"""One lane per partition: records of a partition are handled in order, partitions
independently, so a message that waits (retrying, or for another topic's message
to arrive first) holds up only its own partition while the consumer keeps fetching
the others. A lane remembers the next offset it may commit."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable

from aiokafka import ConsumerRecord


class Lane:
    def __init__(self, handle: Callable[[ConsumerRecord], Awaitable[None]]) -> None:
        self._handle = handle
        self._backlog: deque[ConsumerRecord] = deque()
        self._fed = asyncio.Event()
        self._finish = False
        self.next_offset: int | None = None
        self._task = asyncio.create_task(self._work())

    @property
    def backlog(self) -> int:
        return len(self._backlog)

    def feed(self, records: list[ConsumerRecord]) -> None:
        self._backlog.extend(records)
        self._fed.set()

    async def _work(self) -> None:
        while True:
            if not self._backlog:
                if self._finish:
                    return
                self._fed.clear()
                await self._fed.wait()
                continue
            record = self._backlog.popleft()
            await self._handle(record)
            self.next_offset = record.offset + 1

    async def finish(self, timeout: float) -> None:
        """Stops after the record in hand, dropping the backlog (it is redelivered
        from the last committed offset)."""
        self._backlog.clear()
        self._finish = True
        self._fed.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except TimeoutError:
            await self.abandon()

    async def abandon(self) -> None:
        """Stops at once: the record in hand is rolled back and redelivered."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
