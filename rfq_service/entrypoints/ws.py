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

Requests (ws_requests.py says what each does) run concurrently, so a slow accept
does not hold up a cancel. Price messages are not numbered: they are a stream of
the latest value, not history.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import datetime
from enum import Enum
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect

from otc.auth import Principal, Role, Unauthorized
from otc.errors import Forbidden, OtcError, TooManySessions, ValidationFailed
from otc.lease import EXPIRED_CLOSE_CODE, EXPIRED_MESSAGE, Lease
from otc.logging import get_logger
from rfq_service.entrypoints.hub import Connection, Hub, Session
from rfq_service.entrypoints.ws_requests import Client, error_of, handle, refusal
from rfq_service.entrypoints.ws_requests import SocketDeps as SocketDeps
from rfq_service.service_layer.prices import PriceSubscription

log = get_logger(__name__)

HEARTBEAT_S = 15.0
MAX_IN_FLIGHT = 16
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_TOO_MANY_SESSIONS = 4429
CLOSE_CODES = {
    Unauthorized: CLOSE_UNAUTHORIZED,
    Forbidden: CLOSE_FORBIDDEN,
    TooManySessions: CLOSE_TOO_MANY_SESSIONS,
}
CLOSE_TOO_SLOW = 1008


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
        connection = Connection(deps.queue_limit)
        session, replay, resync_reason = _attach(deps.hub, caller, connection, resume)
    except OtcError as exc:
        await websocket.send_json({"type": "error", "error": error_of(exc)})
        code = CLOSE_CODES.get(type(exc), 1008)
        await websocket.close(code=code, reason=exc.message[:120])
        return

    prices = PriceSubscription(deps.prices, connection.offer, max_rate_hz=deps.price_max_hz)
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
        client = Client(Lease(caller, deps.edge.now), session, prices)
        ending = await _pump(websocket, client, connection, deps)
    except (WebSocketDisconnect, RuntimeError):
        ending = None
    finally:
        deps.hub.detach(session)
        prices.close()
    if ending is None:
        return
    if ending is Ending.EXPIRED:
        log.info("websocket token expired, disconnected", party=caller.party, session=session.id)
        code, reason = EXPIRED_CLOSE_CODE, EXPIRED_MESSAGE
        expired = {"type": "error", "error": {"code": "token_expired", "message": reason}}
        with contextlib.suppress(Exception):
            await asyncio.wait_for(websocket.send_json(expired), 2.0)
    else:
        log.warning("websocket too slow, disconnected", party=caller.party, session=session.id)
        code = CLOSE_TOO_SLOW
        reason = "client too slow: send queue overflowed; resume with last_seq"
    # A client that reads nothing may never take the close frame either.
    with contextlib.suppress(Exception):
        await asyncio.wait_for(websocket.close(code=code, reason=reason[:120]), 2.0)


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


class Ending(Enum):
    """Why the server ends a connection (None when the client went away)."""

    TOO_SLOW = "too slow"
    EXPIRED = "token expired"


async def _pump(
    websocket: WebSocket, client: Client, connection: Connection, deps: SocketDeps
) -> Ending | None:
    """Runs the reader and the writer until either ends, the client falls so far
    behind that its send queue overflows, or its token's lease runs out."""
    reader = asyncio.create_task(_read(websocket, client, deps))
    writer = asyncio.create_task(_write(websocket, connection))
    overflow = asyncio.create_task(connection.overflowed_event.wait())
    expiry = asyncio.create_task(client.lease.ended())
    try:
        await asyncio.wait({reader, writer, overflow, expiry}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        tasks = (reader, writer, overflow, expiry)
        for task in tasks:
            task.cancel()
        # A writer stuck on a client that reads nothing is left to the server's
        # own close: waiting on it could take forever.
        await asyncio.wait(tasks, timeout=1.0)
    if connection.overflowed:
        return Ending.TOO_SLOW
    if expiry.done() and not expiry.cancelled():
        return Ending.EXPIRED
    return None


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


async def _read(websocket: WebSocket, client: Client, deps: SocketDeps) -> None:
    in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
    running: set[asyncio.Task[None]] = set()
    try:
        while True:
            raw = await websocket.receive()
            if raw["type"] == "websocket.disconnect":
                return
            text = raw.get("text")
            if text is None:
                client.session.push(refusal(None, "invalid_message", "send JSON text frames"))
                continue
            await in_flight.acquire()
            task = asyncio.create_task(handle(text, client, deps))
            running.add(task)
            task.add_done_callback(running.discard)
            task.add_done_callback(lambda _: in_flight.release())
    finally:
        for task in running:
            task.cancel()
