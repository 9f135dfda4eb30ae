"""The audit trail's read side, shared by the auditor HTTP API and `otc audit`: pages,
cursors and the rendering of an export, over the read-only queries of
`order_core.adapters.audit_queries`.

Pages hold the events in the log, in log order (an event is there once the
sequencer has integrated it, well within a second); an export holds them too,
then the committed events still waiting for a log index, in their chains' order.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
from collections.abc import AsyncGenerator, Iterable, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncEngine

from order_core.adapters.audit_queries import (
    BATCH_SIZE,
    FIELDS,
    MAX_INDEX,
    AuditEvent,
    AuditEventQueries,
    AuditFilter,
)
from order_core.domain.audit import PlainJson
from otc.errors import ValidationFailed

DEFAULT_PAGE = 100
MAX_PAGE = 1000
_CURSOR_PREFIX = "log:"


class ExportFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"


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


class AuditQueries:
    def __init__(self, engine: AsyncEngine, *, batch_size: int = BATCH_SIZE) -> None:
        self._events = AuditEventQueries(engine, batch_size=batch_size)

    async def page(
        self, where: AuditFilter, *, cursor: str | None = None, limit: int = DEFAULT_PAGE
    ) -> Page:
        if not 1 <= limit <= MAX_PAGE:
            raise ValidationFailed(f"limit: must be 1 to {MAX_PAGE}")
        after = None if cursor is None else decode_cursor(cursor)
        items, last = await self._events.page(where, after=after, limit=limit)
        return Page(items, None if last is None else encode_cursor(last))

    def batches(self, where: AuditFilter) -> AsyncGenerator[list[AuditEvent], None]:
        """Every matching event, the log's then the rest, from one snapshot, never more
        than a batch in memory."""
        return self._events.batches(where)

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
