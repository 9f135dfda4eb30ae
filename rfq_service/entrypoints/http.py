"""The trader API v1 (REST + WebSocket) on FastAPI.

Routes only authenticate, parse and hand over to the `Edge`; errors of the one
taxonomy in otc/errors.py become `{"error": {"code", "message"}}` with their status.
"""

import json
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, WebSocket
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from otc.api import (
    bearer_principal,
    error_body,
    error_response,
    install_error_handlers,
    per_party,
)
from otc.auth import Principal
from otc.rate_limit import TokenBuckets
from otc.service import ops_routes
from rfq_service.entrypoints.schemas import (
    ERROR_RESPONSES,
    AcceptBody,
    CreateRfqBody,
    outcome_answer,
)
from rfq_service.entrypoints.ws import SocketDeps, serve_trader_socket
from rfq_service.service_layer.edge import Edge

DESCRIPTION = """Request-for-quote for block trades: a trader asks market makers for a
price, accepts one quote, and follows the order to settlement.

Authenticate with `Authorization: Bearer <JWT>` (claims `sub` = party, `role`).
Errors are `{"error": {"code", "message"}}`. Live quotes and order updates are
pushed on the WebSocket `/v1/ws` (see the README for its protocol)."""


def create_app(
    *,
    edge: Edge,
    socket: SocketDeps,
    verify: Callable[[str], Principal],
    buckets: TokenBuckets,
    makers: tuple[str, ...],
    ready: Callable[[], bool],
    routers: tuple[APIRouter, ...] = (),
) -> FastAPI:
    app = FastAPI(title="OTC RFQ platform", version="1.0", description=DESCRIPTION)
    install_error_handlers(app)
    Caller = Annotated[Principal, Depends(per_party(buckets, bearer_principal(verify)))]

    rfqs = APIRouter(prefix="/v1/rfqs", tags=["rfqs"], responses=ERROR_RESPONSES)

    @rfqs.post(
        "",
        status_code=201,
        summary="Ask makers for a price",
        responses={
            200: {"description": "a repeat of an earlier request: the same RFQ"},
            409: {
                "description": "client_rfq_id already used for a different request, or "
                "the instrument's market is closed (market_closed, naming the next open)"
            },
        },
    )
    async def create_rfq(body: CreateRfqBody, caller: Caller) -> JSONResponse:
        rfq, created = await edge.create_rfq(caller, body.spec(caller, makers, edge.now()))
        return JSONResponse(rfq, status_code=201 if created else 200)

    @rfqs.get("/{rfq_id}", summary="One RFQ with its quotes")
    async def get_rfq(rfq_id: str, caller: Caller) -> dict[str, Any]:
        return await edge.get_rfq(caller, rfq_id)

    @rfqs.get("", summary="The caller's RFQs, newest first")
    async def list_rfqs(
        caller: Caller,
        status: Annotated[str | None, Query(max_length=32)] = None,
        cursor: Annotated[str | None, Query(max_length=64)] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> dict[str, Any]:
        items, next_cursor = await edge.list_rfqs(caller, status=status, cursor=cursor, limit=limit)
        return {"items": items, "next_cursor": next_cursor}

    command_responses: dict[int | str, dict[str, Any]] = {
        202: {"description": "the maker's last look is still running; the outcome follows"},
        409: {"description": "refused: expired, already taken, wrong state, no credit"},
    }

    @rfqs.post("/{rfq_id}/accept", summary="Accept a quote", responses=command_responses)
    async def accept(rfq_id: str, body: AcceptBody, caller: Caller) -> JSONResponse:
        status, answer = outcome_answer(await edge.accept(caller, rfq_id, body.quote_id, body.side))
        return JSONResponse(answer, status_code=status)

    @rfqs.post("/{rfq_id}/cancel", summary="Cancel an open RFQ", responses=command_responses)
    async def cancel(rfq_id: str, caller: Caller) -> JSONResponse:
        status, answer = outcome_answer(await edge.cancel(caller, rfq_id))
        return JSONResponse(answer, status_code=status)

    app.include_router(rfqs)
    for router in routers:
        app.include_router(router)

    @app.websocket("/v1/ws")
    async def ws(websocket: WebSocket) -> None:
        await serve_trader_socket(websocket, socket)

    app.router.routes.extend(ops_routes(ready))
    app.add_middleware(_ReadyGate, ready=ready)
    return app


class _ReadyGate:
    """Turns the API away (503, or WebSocket close 1013 "try again later") until
    the service is ready and again while it drains: a client served before the
    read model has caught up would be shown a stale picture. Probes and metrics
    always answer."""

    def __init__(self, app: ASGIApp, ready: Callable[[], bool]) -> None:
        self._app = app
        self._ready = ready

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not scope["path"].startswith("/v1/"):
            await self._app(scope, receive, send)
            return
        if self._ready():
            await self._app(scope, receive, send)
            return
        message = "the service is starting or stopping; retry shortly"
        if scope["type"] == "http":
            response = error_response(503, "unavailable", message)
            response.headers["Retry-After"] = "1"
            await response(scope, receive, send)
            return
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        refusal = {"type": "error", **error_body("unavailable", message)}
        await send({"type": "websocket.send", "text": json.dumps(refusal)})
        await send({"type": "websocket.close", "code": 1013, "reason": "try again later"})
