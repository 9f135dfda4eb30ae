"""The audit trail's read side, shared by the auditor HTTP API and `otc audit`.

Rows come out as they are stored, in `seq` order, with `occurred_at` in the
canonical form the hash was computed over: a full export can be re-verified
offline with `order_core.domain.audit`. Nothing here writes; every read runs in a
read-only transaction.

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

from order_core.adapters.audit import AuditLog, audit_events
from order_core.domain.audit import ChainBreak, ChainVerifier, PlainJson, utc_iso
from otc.errors import ValidationFailed

QUOTE_RECORDED = "otc.v1.QuoteRecorded"
QUOTE_WITHDRAWN = "otc.v1.QuoteWithdrawalRecorded"
STATE_CHANGED = "otc.v1.OrderStateChanged"
DEFAULT_PAGE = 100
MAX_PAGE = 1000
BATCH_SIZE = 1000
FIELDS = tuple(c.name for c in audit_events.columns)
_CURSOR_PREFIX = "seq:"

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


@dataclass(frozen=True, slots=True)
class Verdict:
    events: int
    head_hash: str
    broken: ChainBreak | None


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The seq a cursor continues after; anything this module did not hand out is refused."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        if text.startswith(_CURSOR_PREFIX):
            seq = int(text.removeprefix(_CURSOR_PREFIX))
            if seq >= 0:
                return seq
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


def _matching(where: AuditFilter) -> Select[Any]:
    query = select(audit_events).order_by(audit_events.c.seq)
    if where.rfq_id is not None:
        query = query.where(audit_events.c.rfq_id == where.rfq_id)
    if where.party is not None:
        query = query.where(_party_took_part(where.party))
    if where.since is not None:
        query = query.where(audit_events.c.occurred_at >= where.since)
    if where.until is not None:
        query = query.where(audit_events.c.occurred_at < where.until)
    return query


def event_json(row: Any) -> AuditEvent:
    event: AuditEvent = {name: getattr(row, name) for name in FIELDS}
    event["occurred_at"] = utc_iso(row.occurred_at)
    return event


def _payload_text(payload: PlainJson) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def render_jsonl(events: Iterable[AuditEvent]) -> str:
    return "".join(json.dumps(e, separators=(",", ":"), ensure_ascii=False) + "\n" for e in events)


def render_csv(events: Iterable[Mapping[str, PlainJson]], *, header: bool) -> str:
    """RFC 4180 rows, one column per audit field; the payload is a JSON string."""
    out = io.StringIO()
    writer = csv.writer(out)
    if header:
        writer.writerow(FIELDS)
    for event in events:
        writer.writerow([_payload_text(event[f]) if f == "payload" else event[f] for f in FIELDS])
    return out.getvalue()


def render(events: Iterable[AuditEvent], fmt: ExportFormat, *, header: bool = False) -> str:
    return render_jsonl(events) if fmt is ExportFormat.JSONL else render_csv(events, header=header)


@asynccontextmanager
async def _reading(
    engine: AsyncEngine, *, isolation_level: str = "READ COMMITTED"
) -> AsyncIterator[AsyncConnection]:
    async with engine.connect() as conn:
        reader = await conn.execution_options(
            isolation_level=isolation_level, postgresql_readonly=True
        )
        async with reader.begin():
            yield reader


class AuditQueries:
    def __init__(self, engine: AsyncEngine, *, batch_size: int = BATCH_SIZE) -> None:
        self._engine = engine
        self._batch_size = batch_size

    async def page(
        self, where: AuditFilter, *, cursor: str | None = None, limit: int = DEFAULT_PAGE
    ) -> Page:
        if not 1 <= limit <= MAX_PAGE:
            raise ValidationFailed(f"limit: must be 1 to {MAX_PAGE}")
        query = _matching(where).limit(limit + 1)
        if cursor is not None:
            query = query.where(audit_events.c.seq > decode_cursor(cursor))
        async with _reading(self._engine) as conn:
            rows = (await conn.execute(query)).all()
        items = [event_json(row) for row in rows[:limit]]
        more = len(rows) > limit
        return Page(items, encode_cursor(rows[limit - 1].seq) if more else None)

    async def batches(self, where: AuditFilter) -> AsyncGenerator[list[AuditEvent], None]:
        """Every matching row, through one server-side cursor: one statement, so one
        consistent snapshot, and never more than a batch in memory."""
        async with _reading(self._engine) as conn:
            result = await conn.stream(
                _matching(where), execution_options={"yield_per": self._batch_size}
            )
            async for rows in result.partitions():
                yield [event_json(row) for row in rows]

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

    async def verify(self) -> Verdict:
        """Recomputes the whole chain in seq order, in batches, from one snapshot, so
        rows appended meanwhile neither break it nor disagree with the head."""
        async with _reading(self._engine, isolation_level="REPEATABLE READ") as conn:
            log = AuditLog(conn)
            head_seq, head_hash = await log.head()
            verifier = ChainVerifier()
            after = 0
            while batch := await log.events(after_seq=after, limit=self._batch_size):
                for row in batch:
                    broken = verifier.check(row)
                    if broken is not None:
                        return Verdict(verifier.count, verifier.last_hash, broken)
                after = batch[-1].seq
            return Verdict(
                verifier.count, verifier.last_hash, verifier.check_head(head_seq, head_hash)
            )
