"""The trader WebSocket `/v1/ws`.

Connect with a bearer token (`Authorization` header, or `?token=` for browsers).
The server answers `welcome` with a session id and `after_seq`, the sequence
number the next message follows; every message after that carries the session's
sequence number `seq`. To resume after a drop, reconnect with
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

from otc.api import validation_message
from otc.auth import Principal, Role, Unauthorized
from otc.errors import Forbidden, OtcError, ValidationFailed
from otc.instruments import INSTRUMENTS
from otc.logging import get_logger
from otc.rate_limit import TokenBuckets
from rfq_service.entrypoints.hub import QUEUE_LIMIT, Connection, Hub, Session
from rfq_service.entrypoints.rate_limit import RateLimited, enforce
from rfq_service.entrypoints.schemas import (
    AcceptBody,
    CreateRfqBody,
    outcome_answer,
)
from rfq_service.service_layer.edge import Edge
from rfq_service.service_layer.prices import PriceBoard, PriceSubscription

log = get_logger(__name__)

HEARTBEAT_S = 15.0
MAX_IN_FLIGHT = 16
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_TOO_SLOW = 1008


@dataclass(frozen=True, slots=True)
class _Client:
    caller: Principal
    session: Session
    prices: PriceSubscription


@dataclass(frozen=True, slots=True)
class SocketDeps:
    edge: Edge
    hub: Hub
    verify: Callable[[str], Principal]
    makers: tuple[str, ...]
    buckets: TokenBuckets
    prices: PriceBoard
    price_max_hz: float
    queue_limit: int = QUEUE_LIMIT


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
        if caller.role is not Role.TRADER:
            raise Forbidden(
                f"role {caller.role.value} cannot open the trader socket; "
                "market makers use /v1/mm/ws, auditors the /v1/audit API"
            )
        resume = _resume_request(websocket)
    except OtcError as exc:
        await websocket.send_json({"type": "error", "error": _error(exc)})
        code = {Unauthorized: CLOSE_UNAUTHORIZED, Forbidden: CLOSE_FORBIDDEN}.get(type(exc), 1008)
        await websocket.close(code=code, reason=exc.message[:120])
        return

    connection = Connection(deps.queue_limit)
    prices = PriceSubscription(deps.prices, connection.offer, max_rate_hz=deps.price_max_hz)
    session, replay, resync_reason = _attach(deps.hub, caller, connection, resume)
    try:
        await websocket.send_json(
            {
                "type": "welcome",
                "party": caller.party,
                "role": caller.role.value,
                "session_id": session.id,
                "resumed": resync_reason is None and resume is not None,
                "after_seq": session.seq - len(replay),
                **({"resync_reason": resync_reason} if resync_reason else {}),
            }
        )
        for message in replay:
            await websocket.send_json(message)
        if resume is not None and resync_reason is not None:
            rfqs = await deps.edge.snapshot(caller, since=resume[2])
            session.push({"type": "snapshot", "data": {"rfqs": rfqs}})
        client = _Client(caller, session, prices)
        too_slow = await _pump(websocket, client, connection, deps)
    except (WebSocketDisconnect, RuntimeError):
        too_slow = False
    finally:
        deps.hub.detach(session)
        prices.close()
    if too_slow:
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
    websocket: WebSocket, client: _Client, connection: Connection, deps: SocketDeps
) -> bool:
    """Runs the reader and the writer until either ends, or the client falls so far
    behind that its send queue overflows (answers True then)."""
    reader = asyncio.create_task(_read(websocket, client, deps))
    writer = asyncio.create_task(_write(websocket, connection))
    overflow = asyncio.create_task(connection.overflowed_event.wait())
    try:
        await asyncio.wait({reader, writer, overflow}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        tasks = (reader, writer, overflow)
        for task in tasks:
            task.cancel()
        # A writer stuck on a client that reads nothing is left to the server's
        # own close: waiting on it could take forever.
        await asyncio.wait(tasks, timeout=1.0)
    return connection.overflowed


async def _write(websocket: WebSocket, connection: Connection) -> None:
    while True:
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow the
        # cancellation that stops this writer when a message arrives at that moment.
        try:
            async with asyncio.timeout(HEARTBEAT_S):
                message = await connection.queue.get()
        except TimeoutError:
            message = {"type": "heartbeat"}
        await websocket.send_text(json.dumps(message))


async def _read(websocket: WebSocket, client: _Client, deps: SocketDeps) -> None:
    in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
    running: set[asyncio.Task[None]] = set()
    try:
        while True:
            raw = await websocket.receive()
            if raw["type"] == "websocket.disconnect":
                return
            text = raw.get("text")
            if text is None:
                client.session.push(_refusal(None, "invalid_message", "send JSON text frames"))
                continue
            await in_flight.acquire()
            task = asyncio.create_task(_handle(text, client, deps))
            running.add(task)
            task.add_done_callback(running.discard)
            task.add_done_callback(lambda _: in_flight.release())
    finally:
        for task in running:
            task.cancel()


async def _handle(text: str, client: _Client, deps: SocketDeps) -> None:
    session = client.session
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
        enforce(deps.buckets, client.caller)
        status, data = await _answer(request, client, deps)
        session.push({"type": "response", "request_id": request_id, "status": status, "data": data})
    except ValidationError as exc:
        session.push(_refusal(request_id, "invalid_request", validation_message(exc)))
    except RateLimited as exc:
        refusal = {"type": "error", "request_id": request_id, "error": _error(exc)}
        session.push(refusal | {"retry_after": round(exc.retry_after, 3)})
    except OtcError as exc:
        session.push({"type": "error", "request_id": request_id, "error": _error(exc)})
    except Exception as exc:
        log.exception("websocket request failed", error=str(exc), party=client.caller.party)
        session.push(_refusal(request_id, "internal", "internal error"))


async def _answer(request: dict[str, Any], client: _Client, deps: SocketDeps) -> tuple[int, Any]:
    caller = client.caller
    kind = request.get("type")
    data = request.get("data", {})
    if not isinstance(data, dict):
        raise ValidationFailed("data must be a JSON object")
    if kind == "ping":
        return 200, {"pong": True}
    if kind in ("subscribe_prices", "unsubscribe_prices"):
        instruments = _instruments(data)
        if kind == "subscribe_prices":
            client.prices.subscribe(instruments)
        else:
            client.prices.unsubscribe(instruments)
        return 200, {"instruments": sorted(client.prices.instruments)}
    if kind == "create_rfq":
        spec = CreateRfqBody.model_validate(data).spec(caller, deps.makers, deps.edge.now())
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


def _instruments(data: dict[str, Any]) -> list[str]:
    instruments = data.get("instruments")
    if (
        not isinstance(instruments, list)
        or not instruments
        or not all(isinstance(i, str) for i in instruments)
    ):
        raise ValidationFailed("data.instruments must be a non-empty list of instrument symbols")
    unknown = sorted(set(instruments) - INSTRUMENTS.keys())
    if unknown:
        raise ValidationFailed(
            f"unknown instruments: {', '.join(unknown)}; known: {', '.join(sorted(INSTRUMENTS))}",
            code="unknown_instrument",
        )
    return instruments


def _error(exc: OtcError) -> dict[str, str]:
    return {"code": exc.code, "message": exc.message}


def _refusal(request_id: Any, code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "request_id": request_id, "error": {"code": code, "message": message}}
