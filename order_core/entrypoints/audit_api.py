"""The auditor read API: the audit trail over HTTP, served by order_core beside its
ops routes (`/healthz`, `/readyz`, `/metrics`) on the ops port.

order_core owns the trail, so it is the only service that reads it; the public
edge proxies `/v1/audit/*` here. Auditors and admins may read, nobody writes.
Errors are `{"error": {"code", "message"}}`, as on the edge.
"""

# No `from __future__ import annotations`: FastAPI must resolve the dependency
# aliases defined inside the factory function from the live annotations.

from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from datetime import datetime
from typing import Annotated

from fastapi import Depends, FastAPI, Path, Query
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from order_core.adapters.audit_queries import MAX_INDEX, AuditFilter
from order_core.domain.checkpoints import key_id, public_pem
from order_core.entrypoints.audit_schemas import (
    ERROR_RESPONSES,
    CheckpointOut,
    CheckpointsPage,
    ConsistencyProofOut,
    EventsPage,
    FindingOut,
    InclusionProofOut,
    PublicKeyOut,
    VerifyReport,
    checkpoint_out,
)
from order_core.service_layer.audit_proofs import AuditProofs
from order_core.service_layer.audit_queries import (
    DEFAULT_PAGE,
    MAX_PAGE,
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
    proofs: AuditProofs,
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
        """Audit events in log order, one page at a time (auditor or admin)."""
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
        """Recomputes every RFQ's hash chain and the log's Merkle tree against the
        signed checkpoints, and names the first thing that does not hold (auditor or
        admin)."""
        verdict = await proofs.verify()
        finding = verdict.finding
        return VerifyReport(
            ok=verdict.ok,
            events=verdict.events,
            integrated=verdict.integrated,
            tree_size=verdict.tree_size,
            root_hash=verdict.root_hash,
            checkpoints=verdict.checkpoints,
            signed_size=verdict.signed_size,
            finding=None if finding is None else FindingOut.model_validate(asdict(finding)),
        )

    @app.get("/v1/audit/checkpoints/latest", responses=ERROR_RESPONSES)
    async def latest_checkpoint(_: Reader) -> CheckpointOut:
        """The newest signed checkpoint of the log (auditor or admin)."""
        return checkpoint_out(await proofs.latest_checkpoint())

    @app.get("/v1/audit/checkpoints", responses=ERROR_RESPONSES)
    async def checkpoints(
        _: Reader,
        size: Annotated[
            int | None, Query(ge=1, le=MAX_INDEX, description="only the checkpoint of this size")
        ] = None,
        after_size: Annotated[
            int, Query(ge=0, le=MAX_INDEX, description="checkpoints of larger trees")
        ] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    ) -> CheckpointsPage:
        """Signed checkpoints in tree-size order; page on with `after_size` set to the
        last one's `tree_size` (auditor or admin)."""
        found = await proofs.checkpoints(size=size, after_size=after_size, limit=limit)
        return CheckpointsPage(items=[checkpoint_out(c) for c in found])

    @app.get("/v1/audit/events/{log_index}/proof", responses=ERROR_RESPONSES)
    async def inclusion(
        _: Reader,
        log_index: Annotated[int, Path(ge=0, le=MAX_INDEX)],
        size: Annotated[
            int | None,
            Query(ge=1, le=MAX_INDEX, description="tree size; the latest checkpoint's by default"),
        ] = None,
    ) -> InclusionProofOut:
        """That the event at `log_index` is in the tree of `size` events (auditor or admin)."""
        proof = await proofs.inclusion(log_index, size)
        out = asdict(proof) | {
            "checkpoint": None if proof.checkpoint is None else checkpoint_out(proof.checkpoint)
        }
        return InclusionProofOut.model_validate(out)

    @app.get("/v1/audit/consistency", responses=ERROR_RESPONSES)
    async def consistency(
        _: Reader,
        first: Annotated[int, Query(ge=1, le=MAX_INDEX, description="the smaller tree size")],
        second: Annotated[int, Query(ge=1, le=MAX_INDEX, description="the larger tree size")],
    ) -> ConsistencyProofOut:
        """That the tree of `second` events extends the tree of `first` (auditor or admin)."""
        return ConsistencyProofOut.model_validate(asdict(await proofs.consistency(first, second)))

    @app.get("/v1/audit/public-key", responses=ERROR_RESPONSES)
    async def public_key(_: Reader) -> PublicKeyOut:
        """The Ed25519 key that checkpoints are verified with, as a PEM public key."""
        return PublicKeyOut(
            key_id=key_id(proofs.public_key), public_key_pem=public_pem(proofs.public_key)
        )

    app.router.routes.extend(ops_routes(ready))
    return app
