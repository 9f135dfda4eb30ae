"""The audit trail in PostgreSQL: appending to the hash chain and reading it back.

Appends serialize on the one-row `audit_head`, locked `FOR UPDATE` by the
appending transaction until it commits. That is what keeps the chain linear with
many writers (row n's `prev_hash` is row n-1's `hash`), and it hands out `seq`
gaplessly and in commit order, so a reader paging with `after_seq` never skips a
row that committed late. The price is one hot row: audited commits of all
order_core replicas take turns, each holding the lock for a few statements and
its commit. The unit of work takes it last, right before committing, so it is
held briefly and never ahead of an order row (no lock-order deadlocks).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, Integer, Table, Text, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

from order_core.adapters.tables import metadata
from order_core.domain.audit import AuditRecord, ChainedRecord, chain, plain_json

HEAD_ID = 1
DEFAULT_LIMIT = 500

audit_events = Table(
    "audit_events",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("rfq_id", Text, nullable=False),
    Column("event_type", Text, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("producer", Text, nullable=False),
    Column("event_id", Text, nullable=False, unique=True),
    Column("correlation_id", Text, nullable=False),
    Column("causation_id", Text, nullable=False),
    Column("party", Text, nullable=False),
    Column("payload", JSONB, nullable=False),
    Column("prev_hash", Text, nullable=False),
    Column("hash", Text, nullable=False),
)

audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", Text, nullable=False),
)


def _row(chained: ChainedRecord) -> dict[str, Any]:
    r = chained.record
    return {
        "seq": chained.seq,
        "rfq_id": r.rfq_id,
        "event_type": r.event_type,
        "occurred_at": r.occurred_at,
        "producer": r.producer,
        "event_id": r.event_id,
        "correlation_id": r.correlation_id,
        "causation_id": r.causation_id,
        "party": r.party,
        "payload": plain_json(r.payload),
        "prev_hash": chained.prev_hash,
        "hash": chained.hash,
    }


def _chained(row: Any) -> ChainedRecord:
    record = AuditRecord(
        rfq_id=row.rfq_id,
        event_type=row.event_type,
        occurred_at=row.occurred_at,
        producer=row.producer,
        event_id=row.event_id,
        correlation_id=row.correlation_id,
        causation_id=row.causation_id,
        party=row.party,
        payload=row.payload,
    )
    return ChainedRecord(seq=row.seq, record=record, prev_hash=row.prev_hash, hash=row.hash)


class AuditLog:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def append(self, records: Sequence[AuditRecord]) -> list[ChainedRecord]:
        """Chains the records after the head, in the caller's transaction; the head
        stays locked until that transaction ends."""
        if not records:
            return []
        head = (
            await self._conn.execute(
                select(audit_head.c.seq, audit_head.c.hash)
                .where(audit_head.c.id == HEAD_ID)
                .with_for_update()
            )
        ).one()
        chained = chain(head.seq, head.hash, records)
        await self._conn.execute(audit_events.insert(), [_row(c) for c in chained])
        await self._conn.execute(
            update(audit_head)
            .where(audit_head.c.id == HEAD_ID)
            .values(seq=chained[-1].seq, hash=chained[-1].hash)
        )
        return chained

    async def head(self) -> tuple[int, str]:
        """The seq and hash of the last appended row (0 and the genesis hash at first)."""
        row = (
            await self._conn.execute(
                select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == HEAD_ID)
            )
        ).one()
        return row.seq, row.hash

    async def events(
        self,
        *,
        rfq_id: str | None = None,
        party: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after_seq: int | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> list[ChainedRecord]:
        """Rows in seq order; `since` is inclusive and `until` exclusive. Page on by
        passing the last seq returned as `after_seq`."""
        query = select(audit_events).order_by(audit_events.c.seq).limit(limit)
        if rfq_id is not None:
            query = query.where(audit_events.c.rfq_id == rfq_id)
        if party is not None:
            query = query.where(audit_events.c.party == party)
        if since is not None:
            query = query.where(audit_events.c.occurred_at >= since)
        if until is not None:
            query = query.where(audit_events.c.occurred_at < until)
        if after_seq is not None:
            query = query.where(audit_events.c.seq > after_seq)
        return [_chained(row) for row in await self._conn.execute(query)]
