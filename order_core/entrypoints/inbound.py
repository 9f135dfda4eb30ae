"""From the envelopes order_core consumes to its typed commands, and from each
command to its handler: the one place a payload is read and validated. A payload
that cannot be a command raises `InvalidMessage`, which sends it to the
dead-letter topic. Every handler is idempotent on its command's event_id."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC
from typing import Any

from google.protobuf.message import Message as ProtoMessage

from order_core.domain.order import Quote
from order_core.service_layer import commands as c
from order_core.service_layer.accepting import on_accept_quote
from order_core.service_layer.confirming import (
    on_last_look_response,
    on_settlement_failed,
    on_trade_settled,
)
from order_core.service_layer.end_of_day import on_expire_open_rfqs
from order_core.service_layer.rfqs import (
    on_cancel,
    on_quote_submitted,
    on_quote_withdrawn,
    on_rfq_requested,
)
from order_core.service_layer.transaction import Dependencies
from otc.bus.envelope import InvalidMessage, Message
from otc.contracts import events_pb2 as ev
from otc.instruments import INSTRUMENTS
from otc.money import InvalidDecimal, parse_decimal
from otc.sides import from_proto
from otc.text import clean_text


def _received(msg: Message) -> dict[str, Any]:
    return {
        "event_id": msg.event_id,
        "correlation_id": msg.correlation_id,
        "occurred_at": msg.occurred_at,
    }


def _rfq_requested(msg: Message, p: ev.RfqRequested) -> c.RfqRequested:
    if not p.rfq_id or not p.requester or p.instrument not in INSTRUMENTS:
        raise InvalidMessage("RfqRequested needs rfq_id, requester and a known instrument")
    try:
        side = from_proto(p.side)
        quantity = parse_decimal(p.quantity, field="quantity", positive=True)
    except ValueError as exc:
        raise InvalidMessage(str(exc)) from None
    return c.RfqRequested(
        **_received(msg),
        rfq_id=p.rfq_id,
        requester=p.requester,
        instrument=p.instrument,
        side=side,
        quantity=quantity,
        counterparties=tuple(p.counterparties),
        anonymous=p.anonymous,
        expires_at=p.expires_at.ToDatetime(tzinfo=UTC),
    )


def _quote_submitted(msg: Message, p: ev.QuoteSubmitted) -> c.QuoteSubmitted:
    try:
        quote = Quote(
            quote_id=p.quote_id,
            rfq_id=p.rfq_id,
            maker=p.maker,
            bid_px=parse_decimal(p.bid_px, field="bid_px", positive=True) if p.bid_px else None,
            offer_px=parse_decimal(p.offer_px, field="offer_px", positive=True)
            if p.offer_px
            else None,
            quantity=parse_decimal(p.quantity, field="quantity", positive=True),
            valid_until=p.valid_until.ToDatetime(tzinfo=UTC),
        )
    except InvalidDecimal as exc:
        raise InvalidMessage(str(exc)) from None
    if not quote.quote_id or (quote.bid_px is None and quote.offer_px is None):
        raise InvalidMessage("a quote needs a quote_id and a bid or an offer")
    return c.QuoteSubmitted(
        **_received(msg),
        quote=quote,
        replaces_quote_id=p.replaces_quote_id,
        as_sent=p.SerializeToString(),
    )


def _quote_withdrawn(msg: Message, p: ev.QuoteWithdrawn) -> c.QuoteWithdrawn:
    if not p.rfq_id or not p.quote_id or not p.maker:
        raise InvalidMessage("QuoteWithdrawn needs rfq_id, quote_id and maker")
    return c.QuoteWithdrawn(
        **_received(msg),
        rfq_id=p.rfq_id,
        quote_id=p.quote_id,
        maker=p.maker,
        reason=clean_text(p.reason),
        as_sent=p.SerializeToString(),
    )


def _accept_quote(msg: Message, p: ev.AcceptQuote) -> c.AcceptQuote:
    try:
        side = from_proto(p.side) if p.side else None
    except ValueError as exc:
        raise InvalidMessage(str(exc)) from None
    return c.AcceptQuote(
        **_received(msg), rfq_id=p.rfq_id, quote_id=p.quote_id, trader=p.trader, side=side
    )


def _cancel_rfq(msg: Message, p: ev.CancelRfq) -> c.CancelRfq:
    return c.CancelRfq(**_received(msg), rfq_id=p.rfq_id, trader=p.trader)


def _last_look_response(msg: Message, p: ev.LastLookResponse) -> c.LastLookResponse:
    return c.LastLookResponse(
        **_received(msg),
        rfq_id=p.rfq_id,
        quote_id=p.quote_id,
        maker=p.maker,
        reservation_id=p.reservation_id,
        confirmed=p.confirmed,
        reason=clean_text(p.reason),
        price=p.price,
    )


def _trade_settled(msg: Message, p: ev.TradeSettled) -> c.TradeSettled:
    return c.TradeSettled(**_received(msg), rfq_id=p.rfq_id)


def _settlement_failed(msg: Message, p: ev.SettlementFailed) -> c.SettlementFailed:
    return c.SettlementFailed(**_received(msg), rfq_id=p.rfq_id, reason=p.reason)


def _expire_open_rfqs(msg: Message, p: ev.ExpireOpenRfqs) -> c.ExpireOpenRfqs:
    if not p.business_date or not p.HasField("close"):
        raise InvalidMessage("ExpireOpenRfqs needs a business_date and a close")
    return c.ExpireOpenRfqs(
        **_received(msg), business_date=p.business_date, close=p.close.ToDatetime(tzinfo=UTC)
    )


# Keyed by payload class; each reader takes the payload of its own class.
_READERS: dict[type[ProtoMessage], Callable[[Message, Any], c.Command]] = {
    ev.RfqRequested: _rfq_requested,
    ev.QuoteSubmitted: _quote_submitted,
    ev.QuoteWithdrawn: _quote_withdrawn,
    ev.AcceptQuote: _accept_quote,
    ev.CancelRfq: _cancel_rfq,
    ev.LastLookResponse: _last_look_response,
    ev.TradeSettled: _trade_settled,
    ev.SettlementFailed: _settlement_failed,
    ev.ExpireOpenRfqs: _expire_open_rfqs,
}


def command(msg: Message) -> c.Command | None:
    """The command `msg` carries, or None for a payload order_core does not handle."""
    reader = _READERS.get(type(msg.payload))
    return reader(msg, msg.payload) if reader is not None else None


# Keyed by command class; each handler takes commands of its own class.
_HANDLERS: dict[type[c.Command], Callable[[Dependencies, Any], Awaitable[None]]] = {
    c.RfqRequested: on_rfq_requested,
    c.QuoteSubmitted: on_quote_submitted,
    c.QuoteWithdrawn: on_quote_withdrawn,
    c.AcceptQuote: on_accept_quote,
    c.CancelRfq: on_cancel,
    c.LastLookResponse: on_last_look_response,
    c.TradeSettled: on_trade_settled,
    c.SettlementFailed: on_settlement_failed,
    c.ExpireOpenRfqs: on_expire_open_rfqs,
}


async def deliver(deps: Dependencies, msg: Message) -> None:
    """Handles one consumed message."""
    cmd = command(msg)
    if cmd is None:
        raise InvalidMessage(f"order_core does not handle {msg.type}")
    await _HANDLERS[type(cmd)](deps, cmd)
