"""`/v1/audit/*` on the public edge: order_core's auditor API, proxied.

order_core owns the audit trail and is the only service that reads it; the edge
gives users one base URL. It turns away callers who may not read (401/403)
without a round trip, then forwards the request with the caller's own token, so
order_core still decides, and streams the answer back as it comes: an export is
never held in the edge's memory.
"""

# No `from __future__ import annotations`: FastAPI must resolve the dependency
# aliases defined inside the factory function from the live annotations.

from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Annotated, Any, Literal

import httpx
from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.background import BackgroundTask

from otc.auth import Principal, Role, Unauthorized
from otc.errors import Forbidden, TransientError
from otc.logging import get_logger

log = get_logger(__name__)

READERS = frozenset({Role.AUDITOR, Role.ADMIN})
# A whole-chain verify reads every row before it answers; connecting must be quick.
TIMEOUT = httpx.Timeout(120.0, connect=3.0)
PASSED_HEADERS = ("content-type", "content-disposition")

MAX_INDEX = 2**63 - 1  # the audit log's indexes and sizes are bigints upstream
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing or invalid bearer token"},
    403: {"description": "the token's role is not auditor or admin"},
    404: {"description": "no such event, tree size or checkpoint"},
    422: {"description": "a query parameter is invalid"},
    503: {"description": "the audit service cannot be reached (code audit_unavailable)"},
}


class AuditUnavailable(TransientError):
    code = "audit_unavailable"


RfqId = Annotated[str | None, Query(description="one RFQ's events")]
Party = Annotated[
    str | None,
    Query(
        description="events the party took part in: as requester, as the maker of a quote "
        "or withdrawal, or as the maker whose quote the order accepted"
    ),
]
Since = Annotated[
    datetime | None,
    Query(description="occurred_at at or after this ISO 8601 UTC time, e.g. 2026-01-31T00:00:00Z"),
]
Until = Annotated[datetime | None, Query(description="occurred_at before this ISO 8601 UTC time")]


def _params(**values: str | int | datetime | None) -> dict[str, str | int]:
    return {
        name: value.isoformat() if isinstance(value, datetime) else value
        for name, value in values.items()
        if value is not None
    }


def audit_router(
    upstream: str,
    *,
    authenticate: Callable[[str], Principal],
    timeout: httpx.Timeout = TIMEOUT,
) -> APIRouter:
    """The proxy routes for order_core's audit API at `upstream` (its base URL);
    `authenticate` turns a bearer token into its principal or raises `Unauthorized`."""
    router = APIRouter(prefix="/v1/audit", tags=["audit"], responses=ERROR_RESPONSES)
    bearer = HTTPBearer(auto_error=False)
    # Each request opens its own client (an export streams on it for as long as it
    # lasts), but building a client's TLS context loads the CA bundle, about 40 ms,
    # so the context is built once for all of them.
    tls = httpx.create_ssl_context()

    async def reader_token(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> str:
        if credentials is None:
            raise Unauthorized("missing bearer token")
        if authenticate(credentials.credentials).role not in READERS:
            raise Forbidden("the audit trail is for the auditor and admin roles")
        return credentials.credentials

    Token = Annotated[str, Depends(reader_token)]

    async def open_upstream(
        path: str, token: str, params: dict[str, str | int]
    ) -> tuple[httpx.AsyncClient, httpx.Response]:
        client = httpx.AsyncClient(base_url=upstream, timeout=timeout, verify=tls)
        request = client.build_request(
            "GET", path, params=params, headers={"Authorization": f"Bearer {token}"}
        )
        try:
            return client, await client.send(request, stream=True)
        except httpx.TransportError as exc:
            await client.aclose()
            log.warning("audit service unreachable", upstream=upstream, error=repr(exc))
            raise AuditUnavailable("the audit service cannot be reached; try again") from None

    async def relayed(path: str, token: str, params: dict[str, str | int]) -> Response:
        client, answer = await open_upstream(path, token, params)
        try:
            body = await answer.aread()
        except httpx.TransportError as exc:
            log.warning("audit service answer cut short", upstream=upstream, error=repr(exc))
            raise AuditUnavailable("the audit service stopped answering; try again") from None
        finally:
            await answer.aclose()
            await client.aclose()
        return Response(body, status_code=answer.status_code, headers=_passed(answer))

    @router.get("/events")
    async def events(
        token: Token,
        rfq_id: RfqId = None,
        party: Party = None,
        since: Since = None,
        until: Until = None,
        cursor: Annotated[str | None, Query(description="next_cursor of the page before")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Response:
        """Audit events in log order, one page at a time: `{items, next_cursor}`.
        Auditor or admin role."""
        params = _params(
            rfq_id=rfq_id, party=party, since=since, until=until, cursor=cursor, limit=limit
        )
        return await relayed("/v1/audit/events", token, params)

    @router.get(
        "/export",
        response_class=StreamingResponse,
        responses={200: {"content": {"application/x-ndjson": {}, "text/csv": {}}}},
    )
    async def export(
        token: Token,
        rfq_id: RfqId = None,
        party: Party = None,
        since: Since = None,
        until: Until = None,
        fmt: Annotated[Literal["jsonl", "csv"], Query(alias="format")] = "jsonl",
    ) -> Response:
        """Every matching event, streamed as JSON lines or CSV (one column per field,
        the payload as a JSON string). Auditor or admin role."""
        params = _params(rfq_id=rfq_id, party=party, since=since, until=until, format=fmt)
        client, answer = await open_upstream("/v1/audit/export", token, params)

        async def close() -> None:
            await answer.aclose()
            await client.aclose()

        if answer.status_code != 200:
            try:
                refusal = await answer.aread()
            finally:
                await close()
            return Response(refusal, status_code=answer.status_code, headers=_passed(answer))

        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in answer.aiter_bytes():
                    yield chunk
            except httpx.TransportError as exc:
                # The 200 is already out: all the client can learn is a cut-off stream.
                log.warning("audit export cut short", upstream=upstream, error=repr(exc))
                raise
            finally:
                await close()

        # The background close covers a client that leaves before the first chunk.
        return StreamingResponse(body(), headers=_passed(answer), background=BackgroundTask(close))

    @router.get("/verify")
    async def verify(token: Token) -> Response:
        """Recomputes every RFQ's hash chain and the log's Merkle tree against the
        signed checkpoints: `{ok, events, integrated, tree_size, root_hash,
        checkpoints, signed_size, finding}`, where `finding` names the first event or checkpoint
        that does not hold. Auditor or admin role."""
        return await relayed("/v1/audit/verify", token, {})

    @router.get("/checkpoints/latest")
    async def latest_checkpoint(token: Token) -> Response:
        """The newest signed checkpoint: `{tree_size, root_hash, timestamp, key_id,
        signature}`. Auditor or admin role."""
        return await relayed("/v1/audit/checkpoints/latest", token, {})

    @router.get("/checkpoints")
    async def checkpoints(
        token: Token,
        size: Annotated[
            int | None, Query(ge=1, le=MAX_INDEX, description="only the checkpoint of this size")
        ] = None,
        after_size: Annotated[
            int, Query(ge=0, le=MAX_INDEX, description="checkpoints of larger trees")
        ] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Response:
        """Signed checkpoints in tree-size order: `{items}`; page on with `after_size`.
        Auditor or admin role."""
        params = _params(size=size, after_size=after_size, limit=limit)
        return await relayed("/v1/audit/checkpoints", token, params)

    @router.get("/events/{log_index}/proof")
    async def inclusion(
        token: Token,
        log_index: Annotated[int, Path(ge=0, le=MAX_INDEX)],
        size: Annotated[
            int | None,
            Query(ge=1, le=MAX_INDEX, description="tree size; the latest checkpoint's by default"),
        ] = None,
    ) -> Response:
        """Inclusion proof of the event at `log_index` in the tree of `size` events
        (RFC 6962). Auditor or admin role."""
        return await relayed(f"/v1/audit/events/{log_index}/proof", token, _params(size=size))

    @router.get("/consistency")
    async def consistency(
        token: Token,
        first: Annotated[int, Query(ge=1, le=MAX_INDEX, description="the smaller tree size")],
        second: Annotated[int, Query(ge=1, le=MAX_INDEX, description="the larger tree size")],
    ) -> Response:
        """Consistency proof that the tree of `second` events extends the tree of
        `first` (RFC 6962). Auditor or admin role."""
        return await relayed("/v1/audit/consistency", token, _params(first=first, second=second))

    @router.get("/public-key")
    async def public_key(token: Token) -> Response:
        """The Ed25519 public key (PEM) the checkpoints verify with. Auditor or admin role."""
        return await relayed("/v1/audit/public-key", token, {})

    return router


def _passed(answer: httpx.Response) -> dict[str, str]:
    return {name: answer.headers[name] for name in PASSED_HEADERS if name in answer.headers}
