"""Transactional outbox and inbox tables, and the relay that publishes the outbox.

Every service that must not lose an event writes it to `<schema>.outbox` in the
same transaction as the state change, and records each consumed message's
`event_id` in `<schema>.processed_events` in that transaction too (a duplicate is
then a unique-key no-op). The relay publishes unsent rows in id order and marks
them sent. It selects *unsent* rows rather than `id > last_seen`, because sequence
ids are not handed out in commit order and a cursor would skip a row that commits
late. A crash between publish and mark re-publishes the same envelope (same
event_id), which consumers absorb. A row's trace context is inside its envelope,
written in the span that wrote the row, so the trace goes on past the relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib

import asyncpg
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from otc.bus.producer import Publisher
from otc.db import asyncpg_dsn
from otc.logging import get_logger
from otc.metrics import OUTBOX_LAG, OUTBOX_PUBLISHED

log = get_logger(__name__)


def outbox_table(metadata: MetaData) -> Table:
    return Table(
        "outbox",
        metadata,
        Column("id", BigInteger, primary_key=True, autoincrement=True),
        Column("topic", Text, nullable=False),
        Column("key", Text, nullable=False),
        Column("event_id", Text, nullable=False, unique=True),
        Column("payload", LargeBinary, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("sent_at", DateTime(timezone=True)),
    )


def processed_events_table(metadata: MetaData) -> Table:
    return Table(
        "processed_events",
        metadata,
        Column("consumer", Text, nullable=False),
        Column("event_id", Text, nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        PrimaryKeyConstraint("consumer", "event_id"),
    )


def _advisory_key(name: str) -> int:
    """A stable signed 64-bit key for pg_advisory locks, from a name."""
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def notify_channel(schema: str) -> str:
    return f"{schema}_outbox"


class OutboxRelay:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        outbox: Table,
        publisher: Publisher,
        service: str,
        database_url: str,
        batch_size: int = 200,
        poll_interval: float = 1.0,
    ) -> None:
        self._engine = engine
        self._outbox = outbox
        self._publisher = publisher
        self._service = service
        self._dsn = asyncpg_dsn(database_url)
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._lock_key = _advisory_key(f"{outbox.schema}.{outbox.name}")

    async def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        listener = await self._listen()
        try:
            while not self._stopping.is_set():
                self._wake.clear()
                try:
                    while await self.publish_batch():
                        pass
                except Exception as exc:
                    log.warning(
                        "outbox relay failed; retrying", error=f"{type(exc).__name__}: {exc}"
                    )
                    await asyncio.sleep(0.5)
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll_interval)
            # drain what is left before stopping, so a graceful shutdown loses nothing
            with contextlib.suppress(Exception):
                while await self.publish_batch():
                    pass
        finally:
            if listener is not None:
                await listener.close()

    async def _listen(self) -> asyncpg.Connection | None:
        schema = self._outbox.schema or "public"
        try:
            conn = await asyncpg.connect(self._dsn)
            await conn.add_listener(notify_channel(schema), lambda *_: self._wake.set())
        except Exception as exc:  # polling still works without notifications
            log.warning("outbox LISTEN unavailable; polling only", error=str(exc))
            return None
        return conn

    async def publish_batch(self) -> int:
        """Publishes up to one batch of unsent rows; returns how many it published.

        One relay per schema publishes at a time (a transaction-scoped advisory
        lock; the others find it taken and wait for the next wake-up), so rows go
        out in id order. Within one RFQ, id order is commit order: its writers
        serialize on the order row and insert their outbox rows after that, so a
        later row of the same RFQ always has a higher id. A row of another RFQ that
        commits late with a lower id is simply published on the next pass.
        """
        o = self._outbox
        async with self._engine.begin() as conn:
            if not (
                await conn.execute(select(func.pg_try_advisory_xact_lock(self._lock_key)))
            ).scalar():
                return 0
            rows = (
                await conn.execute(
                    select(o.c.id, o.c.topic, o.c.key, o.c.payload, o.c.created_at)
                    .where(o.c.sent_at.is_(None))
                    .order_by(o.c.id)
                    .limit(self._batch_size)
                )
            ).all()
            if not rows:
                OUTBOX_LAG.labels(self._service).set(0)
                return 0
            lag = (await conn.execute(select(func.now()))).scalar_one() - rows[0].created_at
            OUTBOX_LAG.labels(self._service).set(lag.total_seconds())
            await self._publisher.send_many([(r.topic, r.key, r.payload) for r in rows])
            await conn.execute(
                update(o).where(o.c.id.in_([r.id for r in rows])).values(sent_at=func.now())
            )
        OUTBOX_PUBLISHED.labels(self._service).inc(len(rows))
        return len(rows)
