"""What goes over a market maker's bot socket: the bodies of the messages a bot
sends (quote, replace, withdraw, last_look), validated strictly, and the views of
RFQs, quotes, last looks and withdrawals it is sent, with the one error shape.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    ValidationError,
)

from otc.contracts import events_pb2
from otc.errors import DomainError
from otc.money import InvalidDecimal, parse_decimal
from otc.quote_book import StoredQuote
from otc.rate_limit import TokenBuckets
from otc.text import MAX_REASON_LENGTH, refuse_control
from quoting_service.adapters.contracts import LastLook
from quoting_service.strategy import RfqView


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QuoteData(_Data):
    rfq_id: StrictStr
    bid_px: StrictStr | None = None
    offer_px: StrictStr | None = None
    valid_for_ms: int | None = Field(None, gt=0)


class ReplaceData(QuoteData):
    quote_id: StrictStr  # the quote being replaced


# A maker's reason reaches the trader and the audit trail: plain text only.
Reason = Annotated[StrictStr, Field(max_length=MAX_REASON_LENGTH), AfterValidator(refuse_control)]


class WithdrawData(_Data):
    rfq_id: StrictStr
    quote_id: StrictStr
    reason: Reason = "withdrawn by the market maker"


class LastLookData(_Data):
    reservation_id: StrictStr
    quote_id: StrictStr
    confirm: StrictBool
    price: StrictStr | None = None  # required to confirm: the accepted price, repeated
    reason: Reason = ""


def rfq_for_bot(rfq: RfqView) -> dict[str, Any]:
    view: dict[str, Any] = {
        "rfq_id": rfq.rfq_id,
        "instrument": rfq.instrument.symbol,
        "side": rfq.side.value,
        "quantity": str(rfq.quantity),
        "expires_at": rfq.expires_at.isoformat(),
    }
    if rfq.requester is not None:  # a disclosed RFQ; an anonymous one has none
        view["requester"] = rfq.requester
    return view


def quote_view(quote: StoredQuote) -> dict[str, Any]:
    return {
        "rfq_id": quote.rfq_id,
        "quote_id": quote.quote_id,
        "bid_px": quote.bid_px or None,
        "offer_px": quote.offer_px or None,
        "quantity": quote.quantity,
        "valid_until_ms": quote.valid_until_ms,
    }


def last_look_view(look: LastLook) -> dict[str, Any]:
    trade = look.trade
    return {
        "rfq_id": trade.rfq_id,
        "quote_id": trade.quote_id,
        "reservation_id": look.reservation_id,
        "instrument": trade.instrument.symbol,
        "maker_side": trade.maker_side.value,
        "quantity": str(trade.quantity),
        "price": str(trade.price),
        "deadline": look.deadline.isoformat() if look.deadline else None,
    }


def withdrawal_view(event: events_pb2.QuoteWithdrawn) -> dict[str, Any]:
    return {"rfq_id": event.rfq_id, "quote_id": event.quote_id, "reason": event.reason}


def decimal_field(text: str, field: str) -> Decimal:
    """A price the bot sent, which must be a positive decimal string."""
    try:
        return parse_decimal(text, field=field, positive=True)
    except InvalidDecimal as exc:
        raise DomainError(str(exc), code="invalid_request") from None


def error(
    request_id: object, code: str, message: str, *, retry_after: float | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if retry_after is not None:
        body["retry_after"] = round(retry_after, 3)  # seconds until the same message would pass
    return {"type": "error", "request_id": request_id, "error": body}


class MessageLimit:
    """A maker's budget of bot messages, shared by all its sockets (more sockets buy no
    more), and how many refusals in a row a socket may run into before it is closed."""

    def __init__(self, buckets: TokenBuckets, refusals_before_close: int) -> None:
        self.buckets = buckets
        self.refusals_before_close = refusals_before_close


def validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
    return "; ".join(parts) or "invalid request"
