"""The audit trail's read-only queries: the SQL of the auditor's pages and exports
and of `otc audit verify`, each run in a read-only transaction. Nothing here writes.

Rows come out as stored, with `occurred_at` in the canonical form the hash was
computed over, so a full export can be verified offline (`otc audit verify
--export`).

A `party` filter matches every event that party took part in, not only the rows
whose `party` column names it. That column holds the RFQ's requester (the
trader), so on its own it would show a maker nothing at all; an auditor asking
about a maker expects its quotes and the deals struck on them. So it also matches
the quotes the party made or withdrew, and the state changes of an order that name
one of its quotes as the accepted one (last look, confirmation, settlement).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from order_core.adapters.audit import audit_events, audit_log
from order_core.domain.audit import PlainJson, leaf_hash, utc_iso
from otc.errors import ValidationFailed

QUOTE_RECORDED = "otc.v1.QuoteRecorded"
QUOTE_WITHDRAWN = "otc.v1.QuoteWithdrawalRecorded"
STATE_CHANGED = "otc.v1.OrderStateChanged"
BATCH_SIZE = 1000
MAX_INDEX = 2**63 - 1  # what a bigint holds: beyond, the database would refuse the query
FIELDS = (
    "log_index",
    "rfq_id",
    "rfq_seq",
    "event_type",
    "occurred_at",
    "producer",
    "event_id",
    "correlation_id",
    "causation_id",
    "party",
    "payload",
    "prev_hash",
    "hash",
    "leaf_hash",
)

AuditEvent = dict[str, PlainJson]


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """`since` is inclusive and `until` exclusive, both on `occurred_at`."""

    rfq_id: str | None = None
    party: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        for name, moment in (("since", self.since), ("until", self.until)):
            if moment is not None and moment.tzinfo is None:
                raise ValidationFailed(f"{name} needs a UTC offset, e.g. 2026-01-31T00:00:00Z")


def _party_took_part(party: str) -> ColumnElement[bool]:
    quoted = audit_events.alias("quoted")
    parties_quotes = select(quoted.c.payload[("quote", "quote_id")].astext).where(
        quoted.c.event_type == QUOTE_RECORDED,
        quoted.c.payload[("quote", "maker")].astext == party,
    )
    return or_(
        audit_events.c.party == party,
        and_(
            audit_events.c.event_type == QUOTE_RECORDED,
            audit_events.c.payload[("quote", "maker")].astext == party,
        ),
        and_(
            audit_events.c.event_type == QUOTE_WITHDRAWN,
            audit_events.c.payload[("withdrawal", "maker")].astext == party,
        ),
        and_(
            audit_events.c.event_type == STATE_CHANGED,
            audit_events.c.payload["quote_id"].astext.in_(parties_quotes),
        ),
    )


def _filtered(query: Select[Any], where: AuditFilter) -> Select[Any]:
    if where.rfq_id is not None:
        query = query.where(audit_events.c.rfq_id == where.rfq_id)
    if where.party is not None:
        query = query.where(_party_took_part(where.party))
    if where.since is not None:
        query = query.where(audit_events.c.occurred_at >= where.since)
    if where.until is not None:
        query = query.where(audit_events.c.occurred_at < where.until)
    return query


def in_log(where: AuditFilter) -> Select[Any]:
    """The matching events in the log, in log order."""
    query = (
        select(audit_events, audit_log.c.log_index, audit_log.c.leaf_hash)
        .join(audit_log, audit_log.c.event == audit_events.c.id)
        .order_by(audit_log.c.log_index)
    )
    return _filtered(query, where)


def not_yet_in_log(where: AuditFilter) -> Select[Any]:
    """The matching committed events without a log index yet, in id order."""
    query = (
        select(audit_events)
        .where(~select(audit_log.c.event).where(audit_log.c.event == audit_events.c.id).exists())
        .order_by(audit_events.c.id)
    )
    return _filtered(query, where)


def event_json(row: Any) -> AuditEvent:
    mapping = row._mapping
    event: AuditEvent = {
        name: mapping[name] for name in FIELDS if name not in ("log_index", "leaf_hash")
    }
    event["log_index"] = mapping.get("log_index")
    event["leaf_hash"] = mapping.get("leaf_hash") or leaf_hash(row.hash)
    event["occurred_at"] = utc_iso(row.occurred_at)
    return {name: event[name] for name in FIELDS}


@asynccontextmanager
async def reading(
    engine: AsyncEngine, *, isolation_level: str = "READ COMMITTED"
) -> AsyncIterator[AsyncConnection]:
    async with engine.connect() as conn:
        reader = await conn.execution_options(
            isolation_level=isolation_level, postgresql_readonly=True
        )
        async with reader.begin():
            yield reader


async def streamed(
    conn: AsyncConnection, query: Select[Any], batch_size: int
) -> AsyncGenerator[list[Any], None]:
    result = await conn.stream(query, execution_options={"yield_per": batch_size})
    async for rows in result.partitions():
        yield list(rows)


class AuditEventQueries:
    """The audit events as an auditor reads them, each read on its own connection."""

    def __init__(self, engine: AsyncEngine, *, batch_size: int = BATCH_SIZE) -> None:
        self._engine = engine
        self._batch_size = batch_size

    async def page(
        self, where: AuditFilter, *, after: int | None, limit: int
    ) -> tuple[list[AuditEvent], int | None]:
        """Up to `limit` matching events in the log, in log order, after log index
        `after`; and the log index of the last of them if more follow."""
        query = in_log(where).limit(limit + 1)
        if after is not None:
            query = query.where(audit_log.c.log_index > after)
        async with reading(self._engine) as conn:
            rows = (await conn.execute(query)).all()
        last: int | None = rows[limit - 1].log_index if len(rows) > limit else None
        return [event_json(row) for row in rows[:limit]], last

    async def batches(self, where: AuditFilter) -> AsyncGenerator[list[AuditEvent], None]:
        """Every matching row, the log's then the rest, from one snapshot, never more
        than a batch in memory."""
        async with reading(self._engine, isolation_level="REPEATABLE READ") as conn:
            for query in (in_log(where), not_yet_in_log(where)):
                async with aclosing(streamed(conn, query, self._batch_size)) as rows:
                    async for batch in rows:
                        yield [event_json(row) for row in batch]
