"""RFQs arriving, quotes arriving and withdrawn, and the trader cancelling."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client import Counter

from order_core.domain.lifecycle import IllegalTransition, OrderEvent, OrderState
from order_core.domain.order import Order
from order_core.metrics import RFQ_RECORDED, RFQ_TO_FIRST_QUOTE
from order_core.service_layer import commands as c
from order_core.service_layer import messages
from order_core.service_layer.transaction import (
    DUPLICATE,
    Dependencies,
    Tx,
    refused,
    transaction,
    unknown_command_target,
    unknown_order,
)
from otc.bus import topics
from otc.bus.envelope import InvalidMessage
from otc.logging import get_logger

log = get_logger(__name__)

QUOTES_REFUSED = Counter(
    "otc_order_core_quotes_refused_total", "Quotes order_core would not record", ["reason"]
)


async def on_rfq_requested(deps: Dependencies, cmd: c.RfqRequested) -> None:
    await transaction(deps, lambda tx: _record_rfq(tx, cmd), once=cmd, attempts=1)


async def _record_rfq(tx: Tx, cmd: c.RfqRequested) -> None:
    now = tx.now()
    order = Order(
        rfq_id=cmd.rfq_id,
        requester=cmd.requester,
        instrument=cmd.instrument,
        side=cmd.side,
        quantity=cmd.quantity,
        counterparties=cmd.counterparties,
        anonymous=cmd.anonymous,
        rfq_expires_at=cmd.expires_at,
        created_at=now,
        updated_at=now,
    )
    if await tx.orders.add(order):
        log.info("rfq recorded", rfq_id=order.rfq_id, makers=len(order.counterparties))
        tx.emit_state(order, RFQ_RECORDED)
        if not order.counterparties:
            order.apply(OrderEvent.RFQ_REJECTED, now)
            await tx.orders.save(order)
            tx.emit_state(order, OrderEvent.RFQ_REJECTED, "no eligible market maker")


async def on_quote_submitted(deps: Dependencies, cmd: c.QuoteSubmitted) -> None:
    first_quote_after = await transaction(deps, lambda tx: _record_quote(tx, deps, cmd), once=cmd)
    if isinstance(first_quote_after, timedelta):
        RFQ_TO_FIRST_QUOTE.observe(first_quote_after.total_seconds())


async def _record_quote(tx: Tx, deps: Dependencies, cmd: c.QuoteSubmitted) -> timedelta | None:
    """Records the quote; returns how long the RFQ waited if it is its first."""
    quote, now = cmd.quote, tx.now()
    order = await tx.orders.get(quote.rfq_id)
    if order is None:
        raise unknown_order(deps, cmd, quote.rfq_id, may_be_early=True)
    if quote.maker not in order.counterparties:
        raise InvalidMessage(f"{quote.maker} was not asked to quote on {order.rfq_id}")
    if quote.maker == order.requester:
        # Never QUOTED on its own RFQ: the maker side cannot check an
        # anonymous RFQ, so this is where a self-trade is stopped for sure.
        QUOTES_REFUSED.labels("self_trade").inc()
        log.warning("quote on the maker's own RFQ not recorded", rfq_id=order.rfq_id)
        return None
    first_quote_after = None
    if order.allows(OrderEvent.RECEIVE_QUOTE, now):
        before = order.state
        order.apply(OrderEvent.RECEIVE_QUOTE, now)
        await tx.orders.save(order)
        if before is not order.state:
            tx.emit_state(order, OrderEvent.RECEIVE_QUOTE)
            first_quote_after = now - order.created_at
    elif order.state is not OrderState.PENDING_CONFIRMATION:
        return None  # too late to matter; recorded as processed so it is not retried
    # Kept during a last look too: the order may come back to QUOTED.
    if await tx.orders.add_quote(quote, now):
        old = await tx.orders.get_quote(cmd.replaces_quote_id) if cmd.replaces_quote_id else None
        if old is not None and (old.rfq_id, old.maker) == (quote.rfq_id, quote.maker):
            # the trader sees the old quote go before the new one arrives
            withdrawal = messages.replaced(old, cmd.occurred_at)
            tx.emit(
                topics.ORDER_EVENTS,
                order.rfq_id,
                messages.quote_withdrawal_recorded(order, withdrawal),
            )
        tx.emit(topics.ORDER_EVENTS, order.rfq_id, messages.quote_recorded(order, cmd.as_sent))
    return first_quote_after


async def on_quote_withdrawn(deps: Dependencies, cmd: c.QuoteWithdrawn) -> None:
    await transaction(deps, lambda tx: _record_withdrawal(tx, deps, cmd), once=cmd)


async def _record_withdrawal(tx: Tx, deps: Dependencies, cmd: c.QuoteWithdrawn) -> None:
    order = await tx.orders.get(cmd.rfq_id)
    if order is None:
        # its quote came first on this partition and already waited for the RFQ
        raise unknown_order(deps, cmd, cmd.rfq_id, may_be_early=False)
    quote = await tx.orders.get_quote(cmd.quote_id)
    if quote is None or (quote.rfq_id, quote.maker) != (cmd.rfq_id, cmd.maker):
        # Its quote came first on this partition, so it was never recorded
        # (refused) or is another maker's: nothing to take back.
        log.warning("withdrawal of a quote not on record", rfq_id=cmd.rfq_id, maker=cmd.maker)
    elif order.state in (OrderState.QUOTED, OrderState.PENDING_CONFIRMATION):
        withdrawal = messages.withdrawal_as_shown(cmd.as_sent, cmd.reason)
        tx.emit(
            topics.ORDER_EVENTS, order.rfq_id, messages.quote_withdrawal_recorded(order, withdrawal)
        )
        log.info("quote withdrawn", rfq_id=cmd.rfq_id, maker=cmd.maker, reason=cmd.reason)


async def on_cancel(deps: Dependencies, cmd: c.CancelRfq) -> None:
    refusal = await transaction(deps, lambda tx: _cancel(tx, cmd), once=cmd)
    if refusal is None:
        log.info("rfq cancelled", rfq_id=cmd.rfq_id)
    elif refusal is not DUPLICATE:
        refused(cmd.rfq_id, *refusal)


async def _cancel(tx: Tx, cmd: c.CancelRfq) -> tuple[str, str] | None:
    """Cancels the RFQ and answers the trader; returns the refusal if it cannot."""
    order = await tx.orders.get(cmd.rfq_id)
    if order is None or order.requester != cmd.trader:
        refusal = unknown_command_target(cmd.rfq_id)
    else:
        try:
            order.apply(OrderEvent.CANCEL, tx.now())
        except IllegalTransition as exc:
            refusal = ("wrong_state", str(exc))
        else:
            await tx.orders.save(order)
            tx.emit_state(order, OrderEvent.CANCEL, "cancelled by the trader")
            tx.emit_result(order.rfq_id, order, accepted=True)
            return None
    await tx.refuse(cmd.rfq_id, *refusal)
    return refusal
