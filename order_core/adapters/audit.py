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

import json
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
    bindparam,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from order_core.adapters.repository import ConcurrentUpdate
from order_core.adapters.tables import metadata
from order_core.domain.audit import AuditRecord, ChainedRecord, chain, plain_json

CHAIN_KEY = "audit_events_rfq_id_rfq_seq_key"

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


# Both statements are plain text over arrays, so their compiled form is cached and
# their shape does not depend on how many events a transaction appends: an audited
# commit is on every order's hot path.
_HEADS = text(
    """
    SELECT rfq_id, rfq_seq, hash FROM order_core.audit_events
    WHERE (rfq_id, rfq_seq) IN (
        SELECT rfq_id, max(rfq_seq) FROM order_core.audit_events
        WHERE rfq_id = ANY(CAST(:rfq_ids AS text[])) GROUP BY rfq_id
    )
    """
).bindparams(bindparam("rfq_ids", type_=ARRAY(Text)))

_TEXT_COLUMNS = (
    "rfq_id",
    "event_type",
    "producer",
    "event_id",
    "correlation_id",
    "causation_id",
    "party",
    "payload",
    "prev_hash",
    "hash",
)
# The events in the given order (ids follow it, so a chain's events ascend), each
# queued for the sequencer by the same statement.
_APPEND = text(
    """
    WITH added AS (
        INSERT INTO order_core.audit_events (rfq_id, rfq_seq, event_type, occurred_at,
            producer, event_id, correlation_id, causation_id, party, payload, prev_hash, hash)
        SELECT rfq_id, rfq_seq, event_type, occurred_at, producer, event_id,
            correlation_id, causation_id, party, payload::jsonb, prev_hash, hash
        FROM unnest(
            CAST(:rfq_id AS text[]), CAST(:rfq_seq AS integer[]), CAST(:event_type AS text[]),
            CAST(:occurred_at AS timestamptz[]), CAST(:producer AS text[]),
            CAST(:event_id AS text[]), CAST(:correlation_id AS text[]),
            CAST(:causation_id AS text[]), CAST(:party AS text[]), CAST(:payload AS text[]),
            CAST(:prev_hash AS text[]), CAST(:hash AS text[])
        )
            WITH ORDINALITY AS e(rfq_id, rfq_seq, event_type, occurred_at, producer,
                event_id, correlation_id, causation_id, party, payload, prev_hash, hash, n)
        ORDER BY n
        RETURNING id
    )
    INSERT INTO order_core.audit_pending (event) SELECT id FROM added
    """
).bindparams(
    *(bindparam(name, type_=ARRAY(Text)) for name in _TEXT_COLUMNS),
    bindparam("rfq_seq", type_=ARRAY(Integer)),
    bindparam("occurred_at", type_=ARRAY(DateTime(timezone=True))),
)


def _columns(chained: Sequence[ChainedRecord]) -> dict[str, list[Any]]:
    """The rows as one array per column, for `_APPEND`."""
    return {
        "rfq_id": [c.record.rfq_id for c in chained],
        "rfq_seq": [c.rfq_seq for c in chained],
        "event_type": [c.record.event_type for c in chained],
        "occurred_at": [c.record.occurred_at for c in chained],
        "producer": [c.record.producer for c in chained],
        "event_id": [c.record.event_id for c in chained],
        "correlation_id": [c.record.correlation_id for c in chained],
        "causation_id": [c.record.causation_id for c in chained],
        "party": [c.record.party for c in chained],
        "payload": [json.dumps(plain_json(c.record.payload)) for c in chained],
        "prev_hash": [c.prev_hash for c in chained],
        "hash": [c.hash for c in chained],
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
        try:
            await self._conn.execute(_APPEND, _columns(chained))
        except IntegrityError as exc:
            if _on_chain_key(exc):
                raise ConcurrentUpdate("an audited RFQ's chain grew meanwhile") from exc
            raise
        return chained

    async def _heads(self, rfq_ids: set[str]) -> dict[str, tuple[int, str]]:
        found = await self._conn.execute(_HEADS, {"rfq_ids": sorted(rfq_ids)})
        return {row.rfq_id: (row.rfq_seq, row.hash) for row in found}


def _on_chain_key(exc: IntegrityError) -> bool:
    cause = exc.orig.__cause__ if exc.orig is not None else None
    return isinstance(cause, UniqueViolationError) and cause.constraint_name == CHAIN_KEY
