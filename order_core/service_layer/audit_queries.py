"""The audit trail's read side, shared by the auditor HTTP API and `otc audit`.

Pages hold the events in the log, in log order (an event is there once the
sequencer has integrated it, well within a second); an export holds them too,
then the committed events still waiting for a log index, in their chains' order.
Rows come out as stored, with `occurred_at` in the canonical form the hash was
computed over, so a full export can be verified offline (`otc audit verify
--export`). Nothing here writes; every read runs in a read-only transaction.

A `party` filter matches every event that party took part in, not only the rows
whose `party` column names it. That column holds the RFQ's requester (the
trader), so on its own it would show a maker nothing at all; an auditor asking
about a maker expects its quotes and the deals struck on them. So it also matches
the quotes the party made or withdrew, and the state changes of an order that name
one of its quotes as the accepted one (last look, confirmation, settlement).
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from order_core.adapters.audit import audit_events, audit_log
from order_core.domain.audit import PlainJson, leaf_hash, utc_iso
from otc.errors import ValidationFailed

QUOTE_RECORDED = "otc.v1.QuoteRecorded"
QUOTE_WITHDRAWN = "otc.v1.QuoteWithdrawalRecorded"
STATE_CHANGED = "otc.v1.OrderStateChanged"
DEFAULT_PAGE = 100
MAX_PAGE = 1000
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
_CURSOR_PREFIX = "log:"

AuditEvent = dict[str, PlainJson]


class ExportFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"


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


@dataclass(frozen=True, slots=True)
class Page:
    items: list[AuditEvent]
    next_cursor: str | None


def encode_cursor(log_index: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{log_index}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The log index a cursor continues after; anything this module did not hand out
    is refused."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        if text.startswith(_CURSOR_PREFIX):
            log_index = int(text.removeprefix(_CURSOR_PREFIX))
            if 0 <= log_index <= MAX_INDEX:
                return log_index
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise ValidationFailed("cursor: not a cursor this API handed out")


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


def _payload_text(payload: PlainJson) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def render_jsonl(events: Iterable[AuditEvent]) -> str:
    return "".join(json.dumps(e, separators=(",", ":"), ensure_ascii=False) + "\n" for e in events)


def render_csv(events: Iterable[Mapping[str, PlainJson]], *, header: bool) -> str:
    """RFC 4180 rows, one column per audit field; the payload is a JSON string and a
    missing log index an empty cell."""
    out = io.StringIO()
    writer = csv.writer(out)
    if header:
        writer.writerow(FIELDS)
    for event in events:
        writer.writerow(
            [
                _payload_text(event[f])
                if f == "payload"
                else ("" if event[f] is None else event[f])
                for f in FIELDS
            ]
        )
    return out.getvalue()


def render(events: Iterable[AuditEvent], fmt: ExportFormat, *, header: bool = False) -> str:
    return render_jsonl(events) if fmt is ExportFormat.JSONL else render_csv(events, header=header)


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


class AuditQueries:
    def __init__(self, engine: AsyncEngine, *, batch_size: int = BATCH_SIZE) -> None:
        self._engine = engine
        self._batch_size = batch_size

    async def page(
        self, where: AuditFilter, *, cursor: str | None = None, limit: int = DEFAULT_PAGE
    ) -> Page:
        if not 1 <= limit <= MAX_PAGE:
            raise ValidationFailed(f"limit: must be 1 to {MAX_PAGE}")
        query = in_log(where).limit(limit + 1)
        if cursor is not None:
            query = query.where(audit_log.c.log_index > decode_cursor(cursor))
        async with reading(self._engine) as conn:
            rows = (await conn.execute(query)).all()
        items = [event_json(row) for row in rows[:limit]]
        more = len(rows) > limit
        return Page(items, encode_cursor(rows[limit - 1].log_index) if more else None)

    async def batches(self, where: AuditFilter) -> AsyncGenerator[list[AuditEvent], None]:
        """Every matching row, the log's then the rest, from one snapshot, never more
        than a batch in memory."""
        async with reading(self._engine, isolation_level="REPEATABLE READ") as conn:
            for query in (in_log(where), not_yet_in_log(where)):
                async with aclosing(streamed(conn, query, self._batch_size)) as rows:
                    async for batch in rows:
                        yield [event_json(row) for row in batch]

    async def export(self, where: AuditFilter, fmt: ExportFormat) -> AsyncGenerator[str, None]:
        """The rendered export, one chunk per batch. The first chunk comes only once
        the query has run, so a caller can wait for it before promising success."""
        header = fmt is ExportFormat.CSV
        # Closed here and now when the reader stops early, not whenever it is collected:
        # the batches hold a database connection.
        async with aclosing(self.batches(where)) as batches:
            async for batch in batches:
                yield render(batch, fmt, header=header)
                header = False
        if header:
            yield render_csv((), header=True)
