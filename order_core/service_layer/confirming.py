"""The end of a deal: the maker's last look, then settlement's verdict."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client import Counter

from order_core.domain.lifecycle import OrderEvent
from order_core.domain.order import Order
from order_core.metrics import ACCEPT_TO_CONFIRMED
from order_core.service_layer import commands as c
from order_core.service_layer.resolving import confirm, credit_committed, resolve
from order_core.service_layer.transaction import (
    Dependencies,
    Tx,
    already_processed,
    record_processed,
    transaction,
    unknown_order,
)
from otc import failpoints
from otc.logging import get_logger
from otc.money import InvalidDecimal, fmt, parse_decimal

log = get_logger(__name__)

LAST_LOOKS_IGNORED = Counter(
    "otc_last_look_answers_ignored_total",
    "Last-look answers that did not decide the trade: sent after the window (`late`: the "
    "reservation's state ended the last look), or from another maker",
    ["reason"],
)


async def on_last_look_response(deps: Dependencies, cmd: c.LastLookResponse) -> None:
    """A last-look answer counts when the maker sent it: the envelope's time, stamped
    by the quoting service, within the order's window. One that order_core handles
    late (after an outage, a redelivery, a retried Commit) still trades when it was
    sent in time; one sent after the window ends the last look as the sweeper would."""
    if await already_processed(deps, cmd.event_id):
        return
    order, accepted = await deps.reads.order_and_accepted_quote(cmd.rfq_id)
    if order is None:
        raise unknown_order(deps, cmd, cmd.rfq_id, may_be_early=False)
    pending = order.pending_on(cmd.reservation_id)
    deadline = order.lastlook_deadline
    if pending and accepted is not None and cmd.maker != accepted.maker:
        # Only the maker of the accepted quote may confirm or reject it.
        return await _ignore(deps, cmd, "other_maker", "last-look answer from another maker")
    if pending and deadline is not None and cmd.occurred_at > deadline:
        LAST_LOOKS_IGNORED.labels("late").inc()
        log.warning("last-look answer sent after the window", rfq_id=cmd.rfq_id, maker=cmd.maker)
        await resolve(deps, cmd.rfq_id, cmd.reservation_id, path="late_answer", cause=cmd)
        return
    event = OrderEvent.COUNTERPARTY_REJECT
    reason = cmd.reason or "rejected by the market maker"
    mismatch = _mismatch(order, cmd) if pending and cmd.confirmed else None
    if mismatch is not None:
        reason = f"confirmation refused: {mismatch}"
    if pending and cmd.confirmed and mismatch is None:
        answer = await deps.risk.commit(cmd.reservation_id)
        if answer.ok:
            failpoints.hit("order_core.confirm.after_commit")
            event, reason = OrderEvent.COUNTERPARTY_CONFIRM, ""
        else:
            reason = f"credit reservation could not be committed: {answer.message}"
    elif pending and await credit_committed(deps, cmd.reservation_id, reason):
        # An earlier answer from the maker committed the credit and then lost its
        # own transaction: the credit is spent, so the trade it stands for stands.
        event, reason = OrderEvent.COUNTERPARTY_CONFIRM, ""
    confirmed_after = await transaction(
        deps, lambda tx: _end_last_look(tx, deps, cmd, event, reason), once=cmd
    )
    if isinstance(confirmed_after, timedelta):
        ACCEPT_TO_CONFIRMED.observe(confirmed_after.total_seconds())
    log.info("last look answered", rfq_id=cmd.rfq_id, outcome=event.value, reason=reason)


async def _end_last_look(
    tx: Tx, deps: Dependencies, cmd: c.LastLookResponse, event: OrderEvent, reason: str
) -> timedelta | None:
    """Ends the last look as decided if it is still pending; returns how long after
    the accept a confirmed trade was confirmed."""
    now = tx.now()
    order = await tx.orders.get(cmd.rfq_id)
    assert order is not None
    if not order.pending_on(cmd.reservation_id):
        return None
    if event is not OrderEvent.COUNTERPARTY_CONFIRM:
        order.end_confirmation(event, now)
        await tx.orders.save(order)
        tx.emit_state(order, event, reason)
        return None
    quote = await tx.orders.get_quote(order.accepted_quote_id or "")
    assert quote is not None
    confirmed_after = None
    if order.lastlook_deadline is not None:
        # the accept set the deadline one last-look window after itself
        confirmed_after = now - (order.lastlook_deadline - deps.last_look_window)
    await confirm(tx, order, quote)
    return confirmed_after


def _mismatch(order: Order, cmd: c.LastLookResponse) -> str | None:
    """Why a confirmation does not confirm the accepted quote, or None if it does."""
    if cmd.quote_id != order.accepted_quote_id:
        return f"it names quote {cmd.quote_id!r}, not the accepted quote {order.accepted_quote_id}"
    try:
        price = parse_decimal(cmd.price, field="price", positive=True)
    except InvalidDecimal:
        return f"its price {cmd.price!r} is not the accepted price {order.price}"
    if price != order.price:
        return f"its price {fmt(price)} is not the accepted price {order.price}"
    return None


async def _ignore(deps: Dependencies, cmd: c.LastLookResponse, label: str, why: str) -> None:
    await record_processed(deps, cmd)
    LAST_LOOKS_IGNORED.labels(label).inc()
    log.warning(f"{why} ignored", rfq_id=cmd.rfq_id, maker=cmd.maker, quote_id=cmd.quote_id)


async def on_trade_settled(deps: Dependencies, cmd: c.TradeSettled) -> None:
    await transaction(deps, lambda tx: _settle(tx, deps, cmd, OrderEvent.SETTLE, ""), once=cmd)


async def on_settlement_failed(deps: Dependencies, cmd: c.SettlementFailed) -> None:
    await transaction(
        deps,
        lambda tx: _settle(tx, deps, cmd, OrderEvent.SETTLEMENT_FAIL, cmd.reason),
        once=cmd,
    )


async def _settle(
    tx: Tx,
    deps: Dependencies,
    cmd: c.TradeSettled | c.SettlementFailed,
    event: OrderEvent,
    reason: str,
) -> None:
    order = await tx.orders.get(cmd.rfq_id)
    if order is None:
        raise unknown_order(deps, cmd, cmd.rfq_id, may_be_early=False)
    order.apply(event, tx.now())
    await tx.orders.save(order)
    tx.emit_state(order, event, reason)
