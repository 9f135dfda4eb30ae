"""The unit of work: one database transaction, the only thing that commits.

It rolls back unless `commit()` is called, and it buffers outbox messages so that
they are written in the same transaction as the state change (and dropped with
it on rollback). `mark_processed` is the idempotent-consumer check: it inserts the
message id and answers False when it was already there.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Self

from google.protobuf.message import Message as ProtoMessage
from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncTransaction

from otc import failpoints
from otc.bus.envelope import encode
from otc.clock import Clock


@dataclass(frozen=True, slots=True)
class OutboxTables:
    outbox: Table
    processed_events: Table


class UnitOfWork:
    def __init__(
        self, engine: AsyncEngine, tables: OutboxTables, *, producer: str, clock: Clock
    ) -> None:
        self._engine = engine
        self._tables = tables
        self._producer = producer
        service = producer.replace("-", "_")
        self._before_commit = f"{service}.uow.before_commit"
        self._after_commit = f"{service}.uow.after_commit"
        self.clock = clock
        self._pending: list[dict[str, object]] = []
        self._conn: AsyncConnection | None = None
        self._tx: AsyncTransaction | None = None

    @property
    def conn(self) -> AsyncConnection:
        if self._conn is None:
            raise RuntimeError("unit of work used outside `async with`")
        return self._conn

    async def __aenter__(self) -> Self:
        self._conn = await self._engine.connect()
        self._tx = await self._conn.begin()
        self._pending = []
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._tx is not None and self._tx.is_active:
                await self._tx.rollback()
        finally:
            self._pending = []
            if self._conn is not None:
                await self._conn.close()
            self._conn = self._tx = None

    def emit(
        self,
        topic: str,
        key: str,
        payload: ProtoMessage,
        *,
        correlation_id: str,
        causation_id: str = "",
    ) -> str:
        event_id, raw = encode(
            payload,
            producer=self._producer,
            occurred_at=self.clock.now(),
            correlation_id=correlation_id,
            causation_id=causation_id,
        )
        self._pending.append({"topic": topic, "key": key, "event_id": event_id, "payload": raw})
        return event_id

    async def mark_processed(self, consumer: str, event_id: str) -> bool:
        table = self._tables.processed_events
        result = await self.conn.execute(
            insert(table)
            .values(consumer=consumer, event_id=event_id)
            .on_conflict_do_nothing()
            .returning(table.c.event_id)
        )
        return result.first() is not None

    async def commit(self) -> None:
        if self._tx is None:
            raise RuntimeError("unit of work used outside `async with`")
        # The failpoints fire only for a transaction with something to publish: an idle
        # sweep commits an empty one every pass, and a crash there proves nothing.
        publishes = bool(self._pending)
        if publishes:
            await self.conn.execute(self._tables.outbox.insert(), self._pending)
            self._pending = []
            failpoints.hit(self._before_commit)
        await self._tx.commit()
        if publishes:
            failpoints.hit(self._after_commit)
