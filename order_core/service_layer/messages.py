"""The events order_core publishes, built from the domain objects."""

from __future__ import annotations

from datetime import datetime

from order_core.domain.order import Order, Quote
from otc.contracts import events_pb2 as ev
from otc.money import fmt
from otc.sides import Side, to_proto


def state_changed(order: Order, event: str, reason: str = "") -> ev.OrderStateChanged:
    return ev.OrderStateChanged(
        rfq_id=order.rfq_id,
        requester=order.requester,
        state=order.state.value,
        version=order.version,
        event=event,
        reason=reason,
        quote_id=order.accepted_quote_id or "",
        price=fmt(order.price) if order.price is not None else "",
        trade_id=order.trade_id or "",
    )


def command_result(
    *,
    command_id: str,
    rfq_id: str,
    requester: str,
    state: str,
    accepted: bool,
    reason_code: str = "",
    reason: str = "",
) -> ev.CommandResult:
    return ev.CommandResult(
        command_id=command_id,
        rfq_id=rfq_id,
        accepted=accepted,
        state=state,
        reason_code=reason_code,
        reason=reason,
        requester=requester,
    )


def quote_recorded(order: Order, as_sent: bytes) -> ev.QuoteRecorded:
    """The maker's quote, exactly as it sent it, for the trader."""
    return ev.QuoteRecorded(requester=order.requester, quote=ev.QuoteSubmitted.FromString(as_sent))


def withdrawal_as_shown(as_sent: bytes, reason: str) -> ev.QuoteWithdrawn:
    """The maker's withdrawal as it sent it, with the reason the trader may be shown."""
    withdrawal = ev.QuoteWithdrawn.FromString(as_sent)
    withdrawal.reason = reason
    return withdrawal


def quote_withdrawal_recorded(
    order: Order, withdrawal: ev.QuoteWithdrawn
) -> ev.QuoteWithdrawalRecorded:
    return ev.QuoteWithdrawalRecorded(requester=order.requester, withdrawal=withdrawal)


def replaced(old: Quote, at: datetime) -> ev.QuoteWithdrawn:
    """The withdrawal a replacement quote implies for the quote it supersedes."""
    withdrawal = ev.QuoteWithdrawn(
        rfq_id=old.rfq_id, quote_id=old.quote_id, maker=old.maker, reason="replaced"
    )
    withdrawal.withdrawn_at.FromDatetime(at)
    return withdrawal


def last_look_request(order: Order, quote: Quote, deadline: datetime) -> ev.LastLookRequested:
    assert order.trade_side is not None
    assert order.price is not None
    maker_side = Side.SELL if order.trade_side is Side.BUY else Side.BUY
    request = ev.LastLookRequested(
        rfq_id=order.rfq_id,
        quote_id=quote.quote_id,
        maker=quote.maker,
        instrument=order.instrument,
        maker_side=to_proto(maker_side),
        quantity=fmt(order.quantity),
        price=fmt(order.price),
        reservation_id=order.reservation_id or "",
    )
    request.deadline.FromDatetime(deadline)
    return request


def trade_confirmed(order: Order, quote: Quote, now: datetime) -> ev.TradeConfirmed:
    assert order.trade_side is not None
    assert order.price is not None
    buyer, seller = (
        (order.requester, quote.maker)
        if order.trade_side is Side.BUY
        else (quote.maker, order.requester)
    )
    trade = ev.TradeConfirmed(
        trade_id=order.trade_id or "",
        rfq_id=order.rfq_id,
        quote_id=quote.quote_id,
        instrument=order.instrument,
        buyer=buyer,
        seller=seller,
        quantity=fmt(order.quantity),
        price=fmt(order.price),
        notional=fmt(order.notional),
    )
    trade.confirmed_at.FromDatetime(now)
    return trade
