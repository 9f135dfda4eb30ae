"""The trader and auditor API v1 (REST + WebSocket) on FastAPI.

Routes only authenticate, parse and hand over to the `Edge`; errors of the one
taxonomy in otc/errors.py become `{"error": {"code", "message"}}` with their status.
"""

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from otc.auth import Principal, Unauthorized, verify_token
from otc.errors import OtcError
from otc.logging import get_logger
from otc.service import ops_routes
from otc.sides import Side
from rfq_service.domain.rfq import RfqSpec, validate_rfq
from rfq_service.entrypoints.hub import Connection, Hub
from rfq_service.service_layer.edge import CommandOutcome, Edge

log = get_logger(__name__)

HEARTBEAT_S = 15.0


class CreateRfqBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    client_rfq_id: StrictStr = Field(min_length=1, max_length=64)
    instrument: StrictStr
    side: StrictStr = Field(description="buy, sell or two_way")
    quantity: StrictStr = Field(description='decimal string, e.g. "2.5"', examples=["2.5"])
    counterparties: list[StrictStr] | None = None
    response_window_ms: int | None = None
    anonymous: StrictBool = False

    def spec(self, caller: Principal, makers: tuple[str, ...]) -> RfqSpec:
        return validate_rfq(
            requester=caller.party,
            client_rfq_id=self.client_rfq_id,
            instrument=self.instrument,
            side=self.side,
            quantity=self.quantity,
            counterparties=self.counterparties,
            response_window_ms=self.response_window_ms,
            anonymous=self.anonymous,
            enabled_makers=makers,
        )


class AcceptBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quote_id: StrictStr = Field(min_length=1)
    side: Side | None = Field(None, description="buy or sell; required on a two-way RFQ")


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _validation_message(exc: RequestValidationError | ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
    return "; ".join(parts) or "invalid request"


def _outcome_response(outcome: CommandOutcome) -> JSONResponse:
    body: dict[str, Any] = {
        "rfq_id": outcome.rfq_id,
        "order_id": outcome.rfq_id,
        "command_id": outcome.command_id,
    }
    if outcome.accepted is None:
        body |= {"status": "PENDING", "message": "no answer yet; the outcome follows on /v1/ws"}
        return JSONResponse(body, status_code=202)
    if outcome.accepted:
        return JSONResponse(body | {"status": outcome.state}, status_code=200)
    status = 404 if outcome.code == "not_found" else 409
    return _error(status, outcome.code or "refused", outcome.reason)


def create_app(
    *, edge: Edge, hub: Hub, secret: str, makers: tuple[str, ...], ready: Callable[[], bool]
) -> FastAPI:
    app = FastAPI(
        title="OTC RFQ platform",
        version="1.0",
        description="Request-for-quote for block trades: traders ask market makers for a price.",
    )
    bearer = HTTPBearer(auto_error=False)

    async def principal(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Principal:
        if credentials is None:
            raise Unauthorized("missing bearer token")
        return verify_token(credentials.credentials, secret=secret)

    Caller = Annotated[Principal, Depends(principal)]

    @app.exception_handler(OtcError)
    async def _otc_error(_: Request, exc: OtcError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, "invalid_request", _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", error=str(exc))
        return _error(500, "internal", "internal error")

    @app.post("/v1/rfqs", status_code=201)
    async def create_rfq(body: CreateRfqBody, caller: Caller) -> JSONResponse:
        rfq, created = await edge.create_rfq(caller, body.spec(caller, makers))
        return JSONResponse(rfq, status_code=201 if created else 200)

    @app.get("/v1/rfqs/{rfq_id}")
    async def get_rfq(rfq_id: str, caller: Caller) -> dict[str, Any]:
        return await edge.get_rfq(caller, rfq_id)

    @app.get("/v1/rfqs")
    async def list_rfqs(
        caller: Caller,
        status: str | None = None,
        cursor: str | None = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> dict[str, Any]:
        items, next_cursor = await edge.list_rfqs(caller, status=status, cursor=cursor, limit=limit)
        return {"items": items, "next_cursor": next_cursor}

    @app.post("/v1/rfqs/{rfq_id}/accept")
    async def accept(rfq_id: str, body: AcceptBody, caller: Caller) -> JSONResponse:
        return _outcome_response(await edge.accept(caller, rfq_id, body.quote_id, body.side))

    @app.post("/v1/rfqs/{rfq_id}/cancel")
    async def cancel(rfq_id: str, caller: Caller) -> JSONResponse:
        return _outcome_response(await edge.cancel(caller, rfq_id))

    @app.websocket("/v1/ws")
    async def ws(websocket: WebSocket) -> None:
        await _serve_socket(websocket, edge=edge, hub=hub, secret=secret, makers=makers)

    app.router.routes.extend(ops_routes(ready))
    return app


def _socket_token(websocket: WebSocket) -> str | None:
    header = websocket.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return websocket.query_params.get("token")


async def _serve_socket(
    websocket: WebSocket, *, edge: Edge, hub: Hub, secret: str, makers: tuple[str, ...]
) -> None:
    await websocket.accept()
    token = _socket_token(websocket)
    try:
        if not token:
            raise Unauthorized("missing token (Authorization header or ?token=)")
        caller = verify_token(token, secret=secret)
    except Unauthorized as exc:
        await websocket.send_json(
            {"type": "error", "error": {"code": exc.code, "message": exc.message}}
        )
        await websocket.close(code=4401, reason=exc.message[:120])
        return
    connection = Connection(caller.party)
    hub.register(connection)
    sender = asyncio.create_task(_send_loop(websocket, connection))
    try:
        await websocket.send_json(
            {"type": "welcome", "party": caller.party, "role": caller.role.value}
        )
        while True:
            request = await websocket.receive_json()
            answer = await _answer(request, caller=caller, edge=edge, makers=makers)
            connection.offer(answer)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        hub.unregister(connection)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender


async def _send_loop(websocket: WebSocket, connection: Connection) -> None:
    while True:
        try:
            message = await asyncio.wait_for(connection.queue.get(), HEARTBEAT_S)
        except TimeoutError:
            message = {"type": "heartbeat"}
        await websocket.send_json(message)
        if connection.overflowed and connection.queue.empty():
            await websocket.close(code=1008, reason="client too slow: send queue overflowed")
            return


async def _answer(
    request: Any, *, caller: Principal, edge: Edge, makers: tuple[str, ...]
) -> dict[str, Any]:
    request_id = request.get("request_id") if isinstance(request, dict) else None
    kind = request.get("type") if isinstance(request, dict) else None
    data = request.get("data", {}) if isinstance(request, dict) else {}
    try:
        if kind == "create_rfq":
            spec = CreateRfqBody.model_validate(data).spec(caller, makers)
            rfq, created = await edge.create_rfq(caller, spec)
            return {
                "type": "response",
                "request_id": request_id,
                "status": 201 if created else 200,
                "data": rfq,
            }
        if kind in ("accept", "cancel"):
            rfq_id = str(data.get("rfq_id", ""))
            if kind == "accept":
                accept = AcceptBody.model_validate({k: v for k, v in data.items() if k != "rfq_id"})
                outcome = await edge.accept(caller, rfq_id, accept.quote_id, accept.side)
            else:
                outcome = await edge.cancel(caller, rfq_id)
            response = _outcome_response(outcome)
            return {
                "type": "response",
                "request_id": request_id,
                "status": response.status_code,
                "data": _json_body(response),
            }
        raise OtcError(f"unknown request type {kind!r}", code="unknown_type")
    except ValidationError as exc:
        return {
            "type": "error",
            "request_id": request_id,
            "error": {"code": "invalid_request", "message": _validation_message(exc)},
        }
    except OtcError as exc:
        return {
            "type": "error",
            "request_id": request_id,
            "error": {"code": exc.code, "message": exc.message},
        }


def _json_body(response: JSONResponse) -> Any:
    return json.loads(bytes(response.body))
