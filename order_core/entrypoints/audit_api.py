"""The auditor read API: the audit trail over HTTP, served by order_core beside its
ops routes (`/healthz`, `/readyz`, `/metrics`) on the ops port.

order_core owns the trail, so it is the only service that reads it; the public
edge proxies `/v1/audit/*` here. Auditors and admins may read, nobody writes.
Errors are `{"error": {"code", "message"}}`, as on the edge.
"""

# No `from __future__ import annotations`: FastAPI must resolve the dependency
# aliases defined inside the factory function from the live annotations.

from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask

from order_core.service_layer.audit_queries import (
    DEFAULT_PAGE,
    MAX_PAGE,
    AuditFilter,
    AuditQueries,
    ExportFormat,
)
from otc.api import bearer_principal, install_error_handlers
from otc.auth import Principal, Role
from otc.clock import Clock
from otc.errors import Forbidden
from otc.service import ops_routes

READERS = frozenset({Role.AUDITOR, Role.ADMIN})
MEDIA_TYPES = {ExportFormat.JSONL: "application/x-ndjson", ExportFormat.CSV: "text/csv"}


class AuditEventOut(BaseModel):
    seq: int = Field(description="position in the hash chain, from 1, without gaps")
    rfq_id: str
    event_type: str = Field(examples=["otc.v1.OrderStateChanged", "otc.v1.QuoteRecorded"])
    occurred_at: str = Field(description="ISO 8601 UTC with microseconds, as hashed")
    producer: str
    event_id: str
    correlation_id: str
    causation_id: str
    party: str = Field(description="the RFQ's requester")
    payload: dict[str, Any]
    prev_hash: str
    hash: str


class EventsPage(BaseModel):
    items: list[AuditEventOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page")


class ChainBreakOut(BaseModel):
    seq: int
    reason: str


class VerifyReport(BaseModel):
    ok: bool
    events: int = Field(description="rows checked before the first break, or all of them")
    head_hash: str = Field(description="hash of the last good row")
    broken: ChainBreakOut | None = Field(description="the first bad row, when the chain breaks")


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "missing or invalid bearer token"},
    403: {"model": ErrorBody, "description": "the token's role is not auditor or admin"},
    422: {"model": ErrorBody, "description": "a query parameter is invalid"},
}


def audit_filter(
    rfq_id: Annotated[str | None, Query(description="one RFQ's events")] = None,
    party: Annotated[
        str | None,
        Query(
            description="events the party took part in: as requester, as the maker of a "
            "quote or withdrawal, or as the maker whose quote the order accepted"
        ),
    ] = None,
    since: Annotated[
        datetime | None,
        Query(
            description="occurred_at at or after this ISO 8601 UTC time, e.g. 2026-01-31T00:00:00Z"
        ),
    ] = None,
    until: Annotated[
        datetime | None, Query(description="occurred_at before this ISO 8601 UTC time")
    ] = None,
) -> AuditFilter:
    return AuditFilter(rfq_id=rfq_id, party=party, since=since, until=until)


Filter = Annotated[AuditFilter, Depends(audit_filter)]


def create_audit_app(
    queries: AuditQueries,
    *,
    authenticate: Callable[[str], Principal],
    clock: Clock,
    ready: Callable[[], bool],
) -> FastAPI:
    """`authenticate` turns a bearer token into its principal or raises `Unauthorized`."""
    app = FastAPI(
        title="OTC audit trail",
        version="1.0",
        description="The tamper-evident order audit trail, read-only, for auditors and admins.",
    )
    install_error_handlers(app)
    authenticated = bearer_principal(authenticate)

    async def reader(caller: Annotated[Principal, Depends(authenticated)]) -> Principal:
        if caller.role not in READERS:
            raise Forbidden("the audit trail is for the auditor and admin roles")
        return caller

    Reader = Annotated[Principal, Depends(reader)]

    @app.get("/v1/audit/events", responses=ERROR_RESPONSES)
    async def events(
        _: Reader,
        where: Filter,
        cursor: Annotated[str | None, Query(description="next_cursor of the page before")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    ) -> EventsPage:
        """Audit events in chain order, one page at a time (auditor or admin)."""
        page = await queries.page(where, cursor=cursor, limit=limit)
        return EventsPage.model_validate({"items": page.items, "next_cursor": page.next_cursor})

    @app.get(
        "/v1/audit/export",
        response_class=StreamingResponse,
        responses={
            200: {"content": {m: {} for m in MEDIA_TYPES.values()}, "description": "the rows"},
            **ERROR_RESPONSES,
        },
    )
    async def export(
        _: Reader,
        where: Filter,
        fmt: Annotated[ExportFormat, Query(alias="format")] = ExportFormat.JSONL,
    ) -> StreamingResponse:
        """Every matching event, streamed as JSON lines or CSV (auditor or admin)."""
        chunks = queries.export(where, fmt)
        # Once the 200 has gone out a failure can only cut the stream short; waiting
        # for the first chunk lets an unreachable database still answer 503.
        first = await anext(chunks, "")

        async def body() -> AsyncIterator[str]:
            yield first
            async for chunk in chunks:
                yield chunk

        stamp = clock.now().strftime("%Y%m%dT%H%M%SZ")
        return StreamingResponse(
            body(),
            media_type=MEDIA_TYPES[fmt],
            headers={"Content-Disposition": f'attachment; filename="audit-{stamp}.{fmt.value}"'},
            background=BackgroundTask(chunks.aclose),
        )

    @app.get("/v1/audit/verify", responses=ERROR_RESPONSES)
    async def verify(_: Reader) -> VerifyReport:
        """Recomputes the whole hash chain and names the first bad row (auditor or admin)."""
        verdict = await queries.verify()
        broken = verdict.broken
        return VerifyReport(
            ok=broken is None,
            events=verdict.events,
            head_hash=verdict.head_hash,
            broken=None if broken is None else ChainBreakOut(seq=broken.seq, reason=broken.reason),
        )

    app.router.routes.extend(ops_routes(ready))
    return app
