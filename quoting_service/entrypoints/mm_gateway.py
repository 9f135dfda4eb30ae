"""The market makers' API: `WS /v1/mm/ws` for quoting bots, and the kill switch.

    WS   /v1/mm/ws?cancel_on_disconnect=true   role market_maker
    POST /v1/mm/kill    {"maker"?}   withdraw every live quote and halt
    POST /v1/mm/reset   {"maker"?}   quote again (with a fresh protection window)
    GET  /v1/mm/status?maker=

A maker acts on itself (`maker` may be left out); an admin names the maker. Routes
authenticate and hand over to the bots' sessions or the controls; errors are
`{"error": {"code", "message"}}` with their status. A bot that sends nothing for
the heartbeat timeout is dropped as if its connection had failed.
"""

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, StrictStr
from starlette.websockets import WebSocketState

from otc.api import bearer_principal, install_error_handlers
from otc.auth import Principal, Role, Unauthorized
from otc.errors import Forbidden, OtcError, TooManySessions, ValidationFailed
from otc.lease import EXPIRED_CLOSE_CODE, EXPIRED_MESSAGE, Lease
from otc.logging import get_logger
from otc.service import ops_routes
from quoting_service.entrypoints import bot_protocol as wire
from quoting_service.entrypoints.bots import Bots, BotSession
from quoting_service.service_layer.halts import Controls

log = get_logger(__name__)

Verify = Callable[[str], Principal]


class MakerBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    maker: StrictStr | None = None


def acting_for(caller: Principal, maker: str | None) -> str:
    """The maker a control call acts on: the caller itself, or any for an admin."""
    if caller.role is Role.ADMIN:
        if not maker:
            raise ValidationFailed("an admin must name the maker")
        return maker
    if caller.role is not Role.MARKET_MAKER:
        raise Forbidden("market makers and admins only")
    if maker not in (None, caller.party):
        raise Forbidden("a market maker may act only on itself")
    return caller.party


def create_app(
    *,
    bots: Bots,
    controls: Controls,
    verify: Verify,
    heartbeat_timeout_s: float,
    ready: Callable[[], bool],
) -> FastAPI:
    app = FastAPI(title="OTC RFQ platform: market makers", version="1.0")
    install_error_handlers(app)
    Caller = Annotated[Principal, Depends(bearer_principal(verify))]

    @app.post("/v1/mm/kill")
    async def kill(body: MakerBody, caller: Caller) -> dict[str, Any]:
        maker = acting_for(caller, body.maker)
        withdrawn = await controls.kill(maker, by=caller.party)
        return {"maker": maker, "halted": True, "withdrawn": [q.quote_id for q in withdrawn]}

    @app.post("/v1/mm/reset")
    async def reset(body: MakerBody, caller: Caller) -> dict[str, Any]:
        maker = acting_for(caller, body.maker)
        return {"maker": maker, "halted": False, "was_halted": await controls.reset(maker)}

    @app.get("/v1/mm/status")
    async def status(caller: Caller, maker: str | None = None) -> dict[str, Any]:
        maker = acting_for(caller, maker)
        halted, live = await controls.status(maker)
        return {"maker": maker, "halted": halted is not None, "reason": halted, "live": live}

    @app.websocket("/v1/mm/ws")
    async def ws(websocket: WebSocket) -> None:
        await _serve_bot(websocket, bots=bots, verify=verify, timeout_s=heartbeat_timeout_s)

    app.router.routes.extend(ops_routes(ready))
    return app


def _token(websocket: WebSocket) -> str | None:
    header = websocket.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return websocket.query_params.get("token")


def _close_code(exc: OtcError) -> int:
    if isinstance(exc, TooManySessions):
        return 4429
    return 4401 if exc.status == 401 else 4403


async def _serve_bot(websocket: WebSocket, *, bots: Bots, verify: Verify, timeout_s: float) -> None:
    await websocket.accept()
    try:
        token = _token(websocket)
        if not token:
            raise Unauthorized("missing token (Authorization header or ?token=)")
        caller = verify(token)
        if caller.role is not Role.MARKET_MAKER:
            raise Forbidden("the market-maker gateway is for market makers only")
        cancel = websocket.query_params.get("cancel_on_disconnect", "true").lower() != "false"
        session = bots.connect(caller.party, cancel_on_disconnect=cancel)
    except (Unauthorized, Forbidden, TooManySessions) as exc:
        await websocket.send_json(
            {"type": "error", "error": {"code": exc.code, "message": exc.message}}
        )
        await websocket.close(code=_close_code(exc), reason=exc.message[:120])
        return
    session.push(
        {
            "type": "welcome",
            "maker": caller.party,
            "cancel_on_disconnect": cancel,
            "heartbeat_timeout_ms": int(timeout_s * 1000),
        }
    )
    sender = asyncio.create_task(_send_loop(websocket, session, timeout_s / 3))
    lease = Lease(caller, bots.now)
    why = "cancel on disconnect"
    loop = asyncio.get_running_loop()
    heard = loop.time()
    try:
        while True:
            remaining = lease.remaining_s()
            if remaining is not None and remaining <= 0:
                why = "token expired"
                break
            silence_left = timeout_s - (loop.time() - heard)
            if silence_left <= 0:
                why = "missed heartbeats"
                await websocket.close(code=4408, reason=why)
                break
            try:
                received = await asyncio.wait_for(
                    websocket.receive(),
                    silence_left if remaining is None else min(silence_left, remaining),
                )
            except TimeoutError:
                continue
            heard = loop.time()
            if received["type"] == "websocket.disconnect":
                break
            text = received.get("text")
            if text is None:
                text = (received.get("bytes") or b"").decode("utf-8", "replace")
            answer = renewal(text, lease, verify)
            if answer is None:
                answer = await session.handle(text)
            if answer is not None:
                session.push(answer)
            if session.refused_in_a_row >= bots.refusals_before_close:
                why = "rate limit exceeded for too long"
                await websocket.close(code=1008, reason=why)
                break
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        sender.cancel()
        try:
            # a sender cut off mid-send by the client going away raises: its bot is
            # still disconnected (and its quotes withdrawn) below
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                await sender
        finally:
            await bots.disconnect(session, why)
        if why == "token expired":  # told only once its quotes are withdrawn
            await _refuse_expired(websocket)


async def _refuse_expired(websocket: WebSocket) -> None:
    expired = {"type": "error", "error": {"code": "token_expired", "message": EXPIRED_MESSAGE}}
    with contextlib.suppress(Exception):
        await asyncio.wait_for(websocket.send_json(expired), 2.0)
        await asyncio.wait_for(
            websocket.close(code=EXPIRED_CLOSE_CODE, reason=EXPIRED_MESSAGE[:120]), 2.0
        )


def renewal(text: str, lease: Lease, verify: Verify) -> dict[str, Any] | None:
    """The answer to an `auth` message, which renews the socket's lease with a fresh
    token of the same maker; None for any other message."""
    try:
        request = json.loads(text)
    except ValueError:
        return None
    if not isinstance(request, dict) or request.get("type") != "auth":
        return None
    request_id = request.get("request_id")
    data = request.get("data")
    token = data.get("token") if isinstance(data, dict) else None
    if not isinstance(token, str) or not token:
        return wire.error(request_id, "invalid_request", "data.token is required")
    try:
        lease.renew(verify(token))
    except OtcError as exc:
        return wire.error(request_id, exc.code, exc.message)
    expires_at = lease.expires_at
    return {
        "type": "response",
        "request_id": request_id,
        "data": {"expires_at": expires_at.isoformat() if expires_at else None},
    }


async def _send_loop(websocket: WebSocket, session: BotSession, heartbeat_s: float) -> None:
    while websocket.client_state is WebSocketState.CONNECTED:
        try:
            message = await asyncio.wait_for(session.queue.get(), heartbeat_s)
        except TimeoutError:
            message = {"type": "heartbeat"}
        await websocket.send_json(message)
        if session.overflowed and session.queue.empty():
            await websocket.close(code=1008, reason="bot too slow: send queue overflowed")
            return
