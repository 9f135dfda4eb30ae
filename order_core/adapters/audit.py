"""The audit trail in PostgreSQL: the tables, and appending an RFQ's events to its
chain in the writer's transaction.

An appender reads its RFQs' last events and chains the new ones after them; no
row is shared between RFQs, so audited commits of different RFQs never wait for
each other. Two writers of one RFQ that read the same head both try the same
`(rfq_id, rfq_seq)`: the second fails on that key and its transaction is run
again on the new head, like any version conflict. Each event is queued in
`audit_pending` by the same statement, for the sequencer to put in the log.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from asyncpg.exceptions import UniqueViolationError
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Column,
    DateTime,
    Integer,
    Table,
    Text,
    func,
    insert,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from order_core.adapters.repository import ConcurrentUpdate
from order_core.adapters.tables import metadata
from order_core.domain.audit import AuditRecord, ChainedRecord, chain, plain_json

CHAIN_KEY = "audit_events_rfq_id_rfq_seq_key"
# rows per INSERT: 12 parameters a row, and PostgreSQL takes at most 32767 a statement
APPEND_BATCH = 1000

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("rfq_id", Text, nullable=False),
    Column("rfq_seq", Integer, nullable=False),
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
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)

audit_pending = Table("audit_pending", metadata, Column("event", BigInteger, primary_key=True))

audit_log = Table(
    "audit_log",
    metadata,
    Column("log_index", BigInteger, primary_key=True, autoincrement=False),
    Column("event", BigInteger, nullable=False, unique=True),
    Column("leaf_hash", Text, nullable=False),
    Column("integrated_at", DateTime(timezone=True), nullable=False),
)

audit_tree = Table(
    "audit_tree",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("size", BigInteger, nullable=False),
    Column("frontier", ARRAY(Text), nullable=False),
)

audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("tree_size", BigInteger, primary_key=True, autoincrement=False),
    Column("root_hash", Text, nullable=False),
    Column("signed_at", DateTime(timezone=True), nullable=False),
    Column("key_id", Text, nullable=False),
    Column("signature", Text, nullable=False),
)


def _row(chained: ChainedRecord) -> dict[str, Any]:
    r = chained.record
    return {
        "rfq_id": r.rfq_id,
        "rfq_seq": chained.rfq_seq,
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


def chained_record(row: Any) -> ChainedRecord:
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
    return ChainedRecord(rfq_seq=row.rfq_seq, record=record, prev_hash=row.prev_hash, hash=row.hash)


class AuditLog:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def append(self, records: Sequence[AuditRecord]) -> list[ChainedRecord]:
        """Chains the records after their RFQs' last events and queues them for the
        log, in the caller's transaction; raises `ConcurrentUpdate` when another
        transaction extended one of those chains first."""
        if not records:
            return []
        chained = chain(await self._heads({r.rfq_id for r in records}), records)
        # One statement a batch, in order: ids follow the chains' order.
        for start in range(0, len(chained), APPEND_BATCH):
            added = (
                insert(audit_events)
                .values([_row(c) for c in chained[start : start + APPEND_BATCH]])
                .returning(audit_events.c.id)
                .cte("added")
            )
            queue = insert(audit_pending).from_select(["event"], select(added.c.id))
            try:
                await self._conn.execute(queue)
            except IntegrityError as exc:
                if _on_chain_key(exc):
                    raise ConcurrentUpdate("an audited RFQ's chain grew meanwhile") from exc
                raise
        return chained

    async def _heads(self, rfq_ids: set[str]) -> dict[str, tuple[int, str]]:
        e = audit_events.c
        last = (
            select(e.rfq_id, func.max(e.rfq_seq))
            .where(e.rfq_id.in_(sorted(rfq_ids)))
            .group_by(e.rfq_id)
        )
        query = select(e.rfq_id, e.rfq_seq, e.hash).where(tuple_(e.rfq_id, e.rfq_seq).in_(last))
        return {row.rfq_id: (row.rfq_seq, row.hash) for row in await self._conn.execute(query)}


def _on_chain_key(exc: IntegrityError) -> bool:
    cause = exc.orig.__cause__ if exc.orig is not None else None
    return isinstance(cause, UniqueViolationError) and cause.constraint_name == CHAIN_KEY
