"""The trader WebSocket `/v1/ws`.

Connect with a bearer token (`Authorization` header, or `?token=` for browsers).
The server answers `welcome` with a session id; every message after that carries
the session's sequence number `seq`. To resume after a drop, reconnect with
`?session_id=...&last_seq=N`: the server replays what came after N with the
original numbers (`welcome.resumed` is true). When it cannot (the session
expired, or lived on another replica), it says why and pushes a `snapshot` of the
caller's RFQs that are still in play or changed since `?since=` (ISO 8601), so
nothing is missed either way.

Requests are `{"type", "request_id", "data"}` with type `create_rfq`, `accept`,
`cancel`, `subscribe_prices`, `unsubscribe_prices` or `ping`; the answer
(`response` or `error`) echoes `request_id`. Requests run concurrently, so a
slow accept does not hold up a cancel. Price messages are not numbered: they are
a stream of the latest value, not history.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from otc.auth import Principal, Unauthorized
from otc.errors import OtcError, ValidationFailed
from otc.logging import get_logger
from rfq_service.entrypoints.hub import Connection, Hub, Session
from rfq_service.entrypoints.schemas import (
    AcceptBody,
    CreateRfqBody,
    outcome_answer,
    validation_message,
)
from rfq_service.service_layer.edge import Edge

log = get_logger(__name__)

HEARTBEAT_S = 15.0
MAX_IN_FLIGHT = 16
CLOSE_UNAUTHORIZED = 4401
CLOSE_TOO_SLOW = 1008


@dataclass(frozen=True, slots=True)
class SocketDeps:
    edge: Edge
    hub: Hub
    verify: Callable[[str], Principal]
    makers: tuple[str, ...]


def _token(websocket: WebSocket) -> str | None:
    header = websocket.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return websocket.query_params.get("token")


async def serve_trader_socket(websocket: WebSocket, deps: SocketDeps) -> None:
    await websocket.accept()
    try:
        token = _token(websocket)
        if not token:
            raise Unauthorized("missing token (Authorization header or ?token=)")
        caller = deps.verify(token)
        resume = _resume_request(websocket)
    except OtcError as exc:
        await websocket.send_json({"type": "error", "error": _error(exc)})
        code = CLOSE_UNAUTHORIZED if isinstance(exc, Unauthorized) else 1008
        await websocket.close(code=code, reason=exc.message[:120])
        return

    connection = Connection()
    session, replay, resync_reason = _attach(deps.hub, caller, connection, resume)
    try:
        await websocket.send_json(
            {
                "type": "welcome",
                "party": caller.party,
                "role": caller.role.value,
                "session_id": session.id,
                "resumed": resync_reason is None and resume is not None,
                "seq": session.seq - len(replay),
                **({"resync_reason": resync_reason} if resync_reason else {}),
            }
        )
        for message in replay:
            await websocket.send_json(message)
        if resume is not None and resync_reason is not None:
            rfqs = await deps.edge.snapshot(caller, since=resume[2])
            session.push({"type": "snapshot", "data": {"rfqs": rfqs}})
        await _pump(websocket, caller, session, connection, deps)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        deps.hub.detach(session)


def _resume_request(websocket: WebSocket) -> tuple[str, int, datetime | None] | None:
    params = websocket.query_params
    session_id = params.get("session_id")
    if session_id is None:
        return None
    try:
        last_seq = int(params.get("last_seq", "0"))
        since_raw = params.get("since")
        since = datetime.fromisoformat(since_raw) if since_raw else None
    except ValueError:
        raise ValidationFailed("last_seq must be an integer and since ISO 8601") from None
    if since is not None and since.tzinfo is None:
        raise ValidationFailed("since needs a time zone, e.g. 2026-11-22T10:00:00Z")
    return session_id, last_seq, since


def _attach(
    hub: Hub,
    caller: Principal,
    connection: Connection,
    resume: tuple[str, int, datetime | None] | None,
) -> tuple[Session, list[dict[str, Any]], str | None]:
    """(session, messages to replay, why a resume fell back to a snapshot)."""
    if resume is not None:
        resumed = hub.resume(caller.party, resume[0], resume[1], connection)
        if resumed is not None:
            return resumed[0], resumed[1], None
        reason = "session unknown, expired or beyond the replay buffer; snapshot follows"
        return hub.open(caller.party, connection), [], reason
    return hub.open(caller.party, connection), [], None


async def _pump(
    websocket: WebSocket,
    caller: Principal,
    session: Session,
    connection: Connection,
    deps: SocketDeps,
) -> None:
    """Runs the reader and the writer until either ends, or the client falls so far
    behind that its send queue overflows."""
    reader = asyncio.create_task(_read(websocket, caller, session, deps))
    writer = asyncio.create_task(_write(websocket, connection))
    overflow = asyncio.create_task(connection.overflowed_event.wait())
    try:
        await asyncio.wait({reader, writer, overflow}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (reader, writer, overflow):
            task.cancel()
        for task in (reader, writer, overflow):
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                await task
    if connection.overflowed:
        log.warning("websocket too slow, disconnected", party=caller.party, session=session.id)
        # A client that reads nothing may never take the close frame either.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                websocket.close(
                    code=CLOSE_TOO_SLOW,
                    reason="client too slow: send queue overflowed; resume with last_seq",
                ),
                2.0,
            )


async def _write(websocket: WebSocket, connection: Connection) -> None:
    while True:
        try:
            message = await asyncio.wait_for(connection.queue.get(), HEARTBEAT_S)
        except TimeoutError:
            message = {"type": "heartbeat"}
        await websocket.send_text(json.dumps(message))


async def _read(
    websocket: WebSocket, caller: Principal, session: Session, deps: SocketDeps
) -> None:
    in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
    running: set[asyncio.Task[None]] = set()
    try:
        while True:
            raw = await websocket.receive()
            if raw["type"] == "websocket.disconnect":
                return
            text = raw.get("text")
            if text is None:
                session.push(_refusal(None, "invalid_message", "send JSON text frames"))
                continue
            await in_flight.acquire()
            task = asyncio.create_task(_handle(text, caller, session, deps))
            running.add(task)
            task.add_done_callback(running.discard)
            task.add_done_callback(lambda _: in_flight.release())
    finally:
        for task in running:
            task.cancel()


async def _handle(text: str, caller: Principal, session: Session, deps: SocketDeps) -> None:
    try:
        request = json.loads(text)
    except ValueError:
        session.push(_refusal(None, "invalid_message", "not valid JSON"))
        return
    if not isinstance(request, dict):
        session.push(_refusal(None, "invalid_message", "a request is a JSON object"))
        return
    request_id = request.get("request_id")
    try:
        status, data = await _answer(request, caller, deps)
        session.push({"type": "response", "request_id": request_id, "status": status, "data": data})
    except ValidationError as exc:
        session.push(_refusal(request_id, "invalid_request", validation_message(exc)))
    except OtcError as exc:
        session.push({"type": "error", "request_id": request_id, "error": _error(exc)})
    except Exception as exc:
        log.exception("websocket request failed", error=str(exc), party=caller.party)
        session.push(_refusal(request_id, "internal", "internal error"))


async def _answer(request: dict[str, Any], caller: Principal, deps: SocketDeps) -> tuple[int, Any]:
    kind = request.get("type")
    data = request.get("data", {})
    if not isinstance(data, dict):
        raise ValidationFailed("data must be a JSON object")
    if kind == "ping":
        return 200, {"pong": True}
    if kind == "create_rfq":
        spec = CreateRfqBody.model_validate(data).spec(caller, deps.makers)
        rfq, created = await deps.edge.create_rfq(caller, spec)
        return (201 if created else 200), rfq
    if kind in ("accept", "cancel"):
        rfq_id = data.get("rfq_id")
        if not isinstance(rfq_id, str) or not rfq_id:
            raise ValidationFailed("data.rfq_id is required")
        if kind == "accept":
            body = AcceptBody.model_validate({k: v for k, v in data.items() if k != "rfq_id"})
            outcome = await deps.edge.accept(caller, rfq_id, body.quote_id, body.side)
        else:
            if set(data) != {"rfq_id"}:
                raise ValidationFailed("cancel takes only rfq_id")
            outcome = await deps.edge.cancel(caller, rfq_id)
        return outcome_answer(outcome)
    raise ValidationFailed(f"unknown request type {kind!r}", code="unknown_type")


def _error(exc: OtcError) -> dict[str, str]:
    return {"code": exc.code, "message": exc.message}


def _refusal(request_id: Any, code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "request_id": request_id, "error": {"code": code, "message": message}}
