"""Request bodies of the trader API and the one error shape every answer uses.

Shared by REST and the WebSocket, so both validate identically and refuse the
same input with the same codes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

from otc.api import error_body
from otc.auth import Principal
from otc.calendar import CALENDARS
from otc.errors import http_status
from otc.settings import get_settings
from otc.sides import Side
from rfq_service.domain.rfq import MAX_WINDOW_MS, MIN_WINDOW_MS, RfqSpec, validate_rfq
from rfq_service.service_layer.edge import CommandOutcome


class CreateRfqBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    client_rfq_id: StrictStr = Field(
        min_length=1,
        max_length=64,
        description="the caller's id for this request: a retry with the same id and body "
        "returns the same RFQ, with a different body it is refused (409)",
    )
    instrument: StrictStr = Field(examples=["BTC-USD"])
    side: StrictStr = Field(description="buy, sell or two_way", examples=["buy"])
    quantity: StrictStr = Field(
        description="decimal string in the instrument's base asset", examples=["2.5"]
    )
    counterparties: list[StrictStr] | None = Field(
        None, description="market makers to ask; all enabled makers when omitted"
    )
    response_window_ms: int | None = Field(
        None,
        description=f"how long quotes may come in, {MIN_WINDOW_MS} to {MAX_WINDOW_MS} ms",
    )
    anonymous: StrictBool = Field(
        False, description="when true, makers never learn who asked (auditors still do)"
    )

    def spec(self, caller: Principal, makers: tuple[str, ...], now: datetime) -> RfqSpec:
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
            now=now,
            calendar=CALENDARS[get_settings().calendar],
        )


class AcceptBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quote_id: StrictStr = Field(min_length=1)
    side: Side | None = Field(None, description="buy or sell; required on a two-way RFQ")


class ErrorDetail(BaseModel):
    code: str = Field(examples=["invalid_request"])
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": what}
    for status, what in (
        (401, "missing, expired or invalid token"),
        (403, "the caller's role may not do this"),
        (404, "no such RFQ for this caller"),
        (422, "invalid request"),
        (429, "rate limit exceeded; see Retry-After"),
    )
}


def outcome_answer(outcome: CommandOutcome) -> tuple[int, dict[str, Any]]:
    """(status, body) of an accept or cancel: the verdict, or 202 while the maker's
    last look is still running."""
    body: dict[str, Any] = {
        "rfq_id": outcome.rfq_id,
        "order_id": outcome.rfq_id,
        "command_id": outcome.command_id,
    }
    if outcome.accepted is None:
        return 202, body | {
            "status": "PENDING",
            "message": "no answer yet; the outcome follows on /v1/ws",
        }
    if outcome.accepted:
        return 200, body | {"status": outcome.state}
    return http_status(outcome.code), error_body(outcome.code or "refused", outcome.reason)
