"""The trader API v1 (REST + WebSocket) on FastAPI.

Routes only authenticate, parse and hand over to the `Edge`; errors of the one
taxonomy in otc/errors.py become `{"error": {"code", "message"}}` with their status.
"""

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from otc.auth import Principal, Unauthorized
from otc.errors import OtcError
from otc.logging import get_logger
from otc.rate_limit import TokenBuckets
from otc.service import ops_routes
from rfq_service.entrypoints.rate_limit import per_party, retry_after_headers
from rfq_service.entrypoints.schemas import (
    ERROR_RESPONSES,
    AcceptBody,
    CreateRfqBody,
    error_body,
    outcome_answer,
    validation_message,
)
from rfq_service.entrypoints.ws import SocketDeps, serve_trader_socket
from rfq_service.service_layer.edge import Edge

log = get_logger(__name__)

DESCRIPTION = """Request-for-quote for block trades: a trader asks market makers for a
price, accepts one quote, and follows the order to settlement.

Authenticate with `Authorization: Bearer <JWT>` (claims `sub` = party, `role`).
Errors are `{"error": {"code", "message"}}`. Live quotes and order updates are
pushed on the WebSocket `/v1/ws` (see the README for its protocol)."""


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status)


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
    bearer = HTTPBearer(auto_error=False)

    async def principal(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Principal:
        if credentials is None:
            raise Unauthorized("missing bearer token")
        return verify(credentials.credentials)

    Caller = Annotated[Principal, Depends(per_party(buckets, principal))]

    @app.exception_handler(OtcError)
    async def _otc_error(_: Request, exc: OtcError) -> JSONResponse:
        response = _error(exc.status, exc.code, exc.message)
        response.headers.update(retry_after_headers(exc))
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, "invalid_request", validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", error=str(exc))
        return _error(500, "internal", "internal error")

    rfqs = APIRouter(prefix="/v1/rfqs", tags=["rfqs"], responses=ERROR_RESPONSES)

    @rfqs.post(
        "",
        status_code=201,
        summary="Ask makers for a price",
        responses={
            200: {"description": "a repeat of an earlier request: the same RFQ"},
            409: {"description": "client_rfq_id already used for a different request"},
        },
    )
    async def create_rfq(body: CreateRfqBody, caller: Caller) -> JSONResponse:
        rfq, created = await edge.create_rfq(caller, body.spec(caller, makers))
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
    return app
