"""The unit of work: one database transaction, the only thing that commits.

It rolls back unless `commit()` is called, and it buffers outbox messages so that
they are written in the same transaction as the state change (and dropped with
it on rollback). `mark_processed` is the idempotent-consumer check: it inserts the
message id and answers False when it was already there.

`BaseUnitOfWork` holds those rules once; `UnitOfWork` runs them on PostgreSQL and
`otc.fake_unit_of_work.FakeUnitOfWork` in memory, and one contract suite runs
against both. A service declares its repositories by subclassing `UnitOfWork` and
building them over the transaction's connection in `bind`; it hooks work into the
commit (order_core's audit append) with `before_commit` and `after_commit`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

from google.protobuf.message import Message as ProtoMessage
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import Table, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncTransaction

from otc import failpoints
from otc.bus.envelope import encode, type_name
from otc.clock import Clock

OUTSIDE = "unit of work used outside `async with`"


@dataclass(frozen=True, slots=True)
class OutboxTables:
    outbox: Table
    processed_events: Table


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One buffered outbox message: the envelope as it will be published, beside what
    went into it, so that a commit hook needs not decode what was just encoded."""

    topic: str
    key: str
    event_id: str
    occurred_at: datetime  # as the envelope carries it: UTC, to the microsecond
    producer: str
    correlation_id: str
    causation_id: str
    payload: ProtoMessage  # a copy: the caller's message may change after the emit
    envelope: bytes

    @property
    def type(self) -> str:
        return type_name(self.payload)


def _as_sent(moment: datetime) -> datetime:
    """The time a consumer decodes from the envelope stamped with `moment`."""
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp.ToDatetime(tzinfo=UTC)


class BaseUnitOfWork:
    """The rules every unit of work keeps, whatever stores its transaction; a store
    implements the underscored methods."""

    def __init__(self, *, producer: str, clock: Clock) -> None:
        self._producer = producer
        service = producer.replace("-", "_")
        self._before_commit_failpoint = f"{service}.uow.before_commit"
        self._after_commit_failpoint = f"{service}.uow.after_commit"
        self.clock = clock
        self._outgoing: list[Outgoing] = []
        self._open = False

    async def __aenter__(self) -> Self:
        await self._begin()
        self._outgoing = []
        self._open = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._rollback()
        finally:
            self._outgoing = []
            self._open = False
            await self._close()

    def _require_open(self) -> None:
        if not self._open:
            raise RuntimeError(OUTSIDE)

    def emit(
        self,
        topic: str,
        key: str,
        payload: ProtoMessage,
        *,
        correlation_id: str,
        causation_id: str = "",
    ) -> str:
        """Buffers a message for the outbox; returns its event id."""
        self._require_open()
        occurred_at = self.clock.now()
        event_id, raw = encode(
            payload,
            producer=self._producer,
            occurred_at=occurred_at,
            correlation_id=correlation_id,
            causation_id=causation_id,
        )
        snapshot = type(payload)()
        snapshot.CopyFrom(payload)
        self._outgoing.append(
            Outgoing(
                topic=topic,
                key=key,
                event_id=event_id,
                occurred_at=_as_sent(occurred_at),
                producer=self._producer,
                correlation_id=correlation_id,
                causation_id=causation_id,
                payload=snapshot,
                envelope=raw,
            )
        )
        return event_id

    async def mark_processed(self, consumer: str, event_id: str) -> bool:
        """Records the message as handled in this transaction; False if it already was."""
        self._require_open()
        return await self._insert_processed(consumer, event_id)

    async def commit(self) -> None:
        self._require_open()
        outgoing, self._outgoing = self._outgoing, []
        await self.before_commit(outgoing)
        # The failpoints fire only for a transaction with something to publish: an idle
        # sweep commits an empty one every pass, and a crash there proves nothing.
        if outgoing:
            await self._write_outbox(outgoing)
            failpoints.hit(self._before_commit_failpoint)
        await self._commit()
        if outgoing:
            failpoints.hit(self._after_commit_failpoint)
        self.after_commit(outgoing)

    async def before_commit(self, outgoing: Sequence[Outgoing]) -> None:
        """Called in the transaction, with what it is about to publish, before the
        outbox rows are written; whatever it writes commits with them."""

    def after_commit(self, outgoing: Sequence[Outgoing]) -> None:
        """Called once the transaction that published `outgoing` has committed."""

    async def _begin(self) -> None:
        raise NotImplementedError

    async def _rollback(self) -> None:
        """Undoes the transaction unless it committed."""
        raise NotImplementedError

    async def _close(self) -> None:
        raise NotImplementedError

    async def _insert_processed(self, consumer: str, event_id: str) -> bool:
        raise NotImplementedError

    async def _write_outbox(self, outgoing: Sequence[Outgoing]) -> None:
        raise NotImplementedError

    async def _commit(self) -> None:
        raise NotImplementedError


class UnitOfWork(BaseUnitOfWork):
    """A transaction on PostgreSQL. Without outbox tables it can neither emit nor
    mark messages processed; with `snapshot` it is a REPEATABLE READ READ ONLY
    transaction, for reports that read several tables as of one moment."""

    def __init__(
        self,
        engine: AsyncEngine,
        tables: OutboxTables | None = None,
        *,
        producer: str,
        clock: Clock,
        snapshot: bool = False,
    ) -> None:
        super().__init__(producer=producer, clock=clock)
        self._engine = engine
        self._tables = tables
        self._snapshot = snapshot
        self._conn: AsyncConnection | None = None
        self._tx: AsyncTransaction | None = None

    @property
    def conn(self) -> AsyncConnection:
        """The transaction's connection, for the repositories built over it."""
        if self._conn is None:
            raise RuntimeError(OUTSIDE)
        return self._conn

    def bind(self, conn: AsyncConnection) -> None:
        """Builds the service's repositories over the connection of a new transaction."""

    async def _begin(self) -> None:
        self._conn = await self._engine.connect()
        self._tx = await self._conn.begin()
        if self._snapshot:
            await self._conn.execute(
                text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            )
        self.bind(self._conn)

    async def _rollback(self) -> None:
        if self._tx is not None and self._tx.is_active:
            await self._tx.rollback()

    async def _close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
        self._conn = self._tx = None

    def _outbox_tables(self) -> OutboxTables:
        if self._tables is None:
            raise RuntimeError(f"{self._producer} has no outbox")
        return self._tables

    async def _insert_processed(self, consumer: str, event_id: str) -> bool:
        table = self._outbox_tables().processed_events
        result = await self.conn.execute(
            insert(table)
            .values(consumer=consumer, event_id=event_id)
            .on_conflict_do_nothing()
            .returning(table.c.event_id)
        )
        return result.first() is not None

    async def _write_outbox(self, outgoing: Sequence[Outgoing]) -> None:
        rows = [
            {"topic": o.topic, "key": o.key, "event_id": o.event_id, "payload": o.envelope}
            for o in outgoing
        ]
        await self.conn.execute(self._outbox_tables().outbox.insert(), rows)

    async def _commit(self) -> None:
        if self._tx is None:
            raise RuntimeError(OUTSIDE)
        await self._tx.commit()
