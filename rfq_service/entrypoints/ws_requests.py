"""What a trader's WebSocket request does: `{"type", "request_id", "data"}` with
type `create_rfq`, `accept`, `cancel`, `subscribe_prices`, `unsubscribe_prices`,
`auth` (a fresh token for the same party, which keeps the socket open past the
first one's expiry) or `ping`, validated as REST validates it and answered with a
`response` or an `error` that echoes `request_id`. The connection itself is ws.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from otc.api import validation_message
from otc.auth import Principal
from otc.errors import OtcError, RateLimited, ValidationFailed
from otc.instruments import INSTRUMENTS
from otc.lease import Lease
from otc.logging import get_logger
from otc.rate_limit import TokenBuckets
from rfq_service.entrypoints.hub import QUEUE_LIMIT, Hub, Session
from rfq_service.entrypoints.schemas import AcceptBody, CreateRfqBody, outcome_answer
from rfq_service.service_layer.edge import Edge
from rfq_service.service_layer.prices import PriceBoard, PriceSubscription

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Client:
    lease: Lease
    session: Session
    prices: PriceSubscription

    @property
    def caller(self) -> Principal:
        return self.lease.caller


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


async def handle(text: str, client: Client, deps: SocketDeps) -> None:
    session = client.session
    try:
        request = json.loads(text)
    except ValueError:
        session.push(refusal(None, "invalid_message", "not valid JSON"))
        return
    if not isinstance(request, dict):
        session.push(refusal(None, "invalid_message", "a request is a JSON object"))
        return
    request_id = request.get("request_id")
    try:
        deps.buckets.charge(client.caller.party)
        status, data = await _answer(request, client, deps)
        session.push({"type": "response", "request_id": request_id, "status": status, "data": data})
    except ValidationError as exc:
        session.push(refusal(request_id, "invalid_request", validation_message(exc)))
    except RateLimited as exc:
        limited = {"type": "error", "request_id": request_id, "error": error_of(exc)}
        session.push(limited | {"retry_after": round(exc.retry_after, 3)})
    except OtcError as exc:
        session.push({"type": "error", "request_id": request_id, "error": error_of(exc)})
    except Exception as exc:
        log.exception("websocket request failed", error=str(exc), party=client.caller.party)
        session.push(refusal(request_id, "internal", "internal error"))


async def _answer(request: dict[str, Any], client: Client, deps: SocketDeps) -> tuple[int, Any]:
    caller = client.caller
    kind = request.get("type")
    data = request.get("data", {})
    if not isinstance(data, dict):
        raise ValidationFailed("data must be a JSON object")
    if kind == "ping":
        return 200, {"pong": True}
    if kind == "auth":
        token = data.get("token")
        if not isinstance(token, str) or not token:
            raise ValidationFailed("data.token is required")
        client.lease.renew(deps.verify(token))
        expires_at = client.lease.expires_at
        return 200, {"expires_at": expires_at.isoformat() if expires_at else None}
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


def error_of(exc: OtcError) -> dict[str, str]:
    return {"code": exc.code, "message": exc.message}


def refusal(request_id: Any, code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "request_id": request_id, "error": {"code": code, "message": message}}
