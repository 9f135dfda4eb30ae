"""Translation between the wire contracts and the strategy SDK's views.

Everything a payload claims is checked here, once: a bad decimal, an unknown
instrument or a missing timestamp raises `InvalidMessage`, which the consumer
dead-letters, so a strategy only ever sees well-formed views.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TypeVar

from google.protobuf.message import Message as ProtoMessage

from otc.bus.envelope import InvalidMessage, Message
from otc.contracts import events_pb2
from otc.instruments import INSTRUMENTS, Instrument
from otc.money import InvalidDecimal, fmt, parse_decimal
from otc.quote_book import StoredQuote
from quoting_service.strategy import RfqView, Side, TradeView

P = TypeVar("P", bound=ProtoMessage)

_SIDES: dict[int, Side] = {
    events_pb2.SIDE_BUY: Side.BUY,
    events_pb2.SIDE_SELL: Side.SELL,
    events_pb2.SIDE_TWO_WAY: Side.TWO_WAY,
}


def payload_as(message: Message, kind: type[P]) -> P:
    if not isinstance(message.payload, kind):
        raise InvalidMessage(f"expected {kind.DESCRIPTOR.full_name}, got {message.type}")
    return message.payload


def rfq_view(rfq: events_pb2.RfqRequested) -> RfqView:
    if not rfq.rfq_id:
        raise InvalidMessage("RfqRequested without rfq_id")
    if not rfq.HasField("expires_at"):
        raise InvalidMessage(f"RFQ {rfq.rfq_id} has no expires_at")
    return RfqView(
        rfq_id=rfq.rfq_id,
        instrument=_instrument(rfq.instrument),
        side=_side(rfq.side),
        quantity=_positive(rfq.quantity, "quantity"),
        expires_at=rfq.expires_at.ToDatetime(tzinfo=UTC),
        requester=None if rfq.anonymous or not rfq.requester else rfq.requester,
    )


@dataclass(frozen=True, slots=True)
class LastLook:
    """A last-look request as the runtime handles it: the strategy's view of the
    trade, plus what the answer must name and when it must arrive by."""

    trade: TradeView
    reservation_id: str
    deadline: datetime | None


def last_look(request: events_pb2.LastLookRequested) -> LastLook:
    if not request.reservation_id:
        raise InvalidMessage(f"last look on {request.rfq_id} has no reservation_id")
    return LastLook(trade_view(request), request.reservation_id, deadline_of(request))


def trade_view(request: events_pb2.LastLookRequested) -> TradeView:
    maker_side = _side(request.maker_side)
    if maker_side is Side.TWO_WAY:
        raise InvalidMessage(f"last look on {request.rfq_id} names no maker side")
    if not request.rfq_id or not request.quote_id:
        raise InvalidMessage("LastLookRequested without rfq_id or quote_id")
    return TradeView(
        rfq_id=request.rfq_id,
        quote_id=request.quote_id,
        instrument=_instrument(request.instrument),
        maker_side=maker_side,
        quantity=_positive(request.quantity, "quantity"),
        price=_positive(request.price, "price"),
    )


def quote_submitted(quote: StoredQuote, replaces: str = "") -> events_pb2.QuoteSubmitted:
    event = events_pb2.QuoteSubmitted(
        rfq_id=quote.rfq_id,
        quote_id=quote.quote_id,
        maker=quote.maker,
        instrument=quote.instrument,
        bid_px=quote.bid_px,
        offer_px=quote.offer_px,
        quantity=quote.quantity,
        replaces_quote_id=replaces,
    )
    event.valid_until.FromMilliseconds(quote.valid_until_ms)
    return event


def quote_withdrawn(quote: StoredQuote, reason: str, at: datetime) -> events_pb2.QuoteWithdrawn:
    event = events_pb2.QuoteWithdrawn(
        rfq_id=quote.rfq_id, quote_id=quote.quote_id, maker=quote.maker, reason=reason
    )
    event.withdrawn_at.FromDatetime(at)
    return event


def last_look_response(
    look: LastLook, maker: str, *, confirmed: bool, reason: str, quote_id: str, price: Decimal
) -> events_pb2.LastLookResponse:
    return events_pb2.LastLookResponse(
        rfq_id=look.trade.rfq_id,
        quote_id=quote_id,
        maker=maker,
        reservation_id=look.reservation_id,
        confirmed=confirmed,
        reason=reason,
        price=fmt(price) if confirmed else "",
    )


def deadline_of(request: events_pb2.LastLookRequested) -> datetime | None:
    return request.deadline.ToDatetime(tzinfo=UTC) if request.HasField("deadline") else None


def _instrument(symbol: str) -> Instrument:
    instrument = INSTRUMENTS.get(symbol)
    if instrument is None:
        raise InvalidMessage(f"unknown instrument {symbol!r}")
    return instrument


def _side(value: int) -> Side:
    side = _SIDES.get(value)
    if side is None:
        raise InvalidMessage(f"side {value} is not buy, sell or two_way")
    return side


def _positive(text: str, field: str) -> Decimal:
    try:
        return parse_decimal(text, field=field, positive=True)
    except InvalidDecimal as exc:
        raise InvalidMessage(str(exc)) from None
