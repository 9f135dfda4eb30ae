"""Ending a last look from the credit reservation's real state.

An order waits in PENDING_CONFIRMATION while its reservation is FROZEN. Whenever
order_core cannot tell from its own rows how a last look ended (the window passed
with no answer, an answer came after the window, a Commit timed out or committed
just before a crash), risk_limits can: the order follows its reservation. A
COMMITTED (or later) reservation confirms the trade; any other is released (a no-op
if it already was) and the order times out. The sweeper, a late answer and the
reconciler all end a last look here, so a committed reservation always ends in a
confirmed trade and a frozen one never outlives its order.
"""

from __future__ import annotations

from enum import StrEnum

from prometheus_client import Counter

from order_core.domain.lifecycle import OrderEvent
from order_core.domain.order import Order, Quote
from order_core.service_layer import messages
from order_core.service_layer.commands import Received
from order_core.service_layer.transaction import DUPLICATE, Dependencies, Tx, transaction
from otc.bus import topics
from otc.ids import derived_id

# What a reservation that credit was committed on can be found in.
COMMITTED = frozenset({"COMMITTED", "SETTLED", "SETTLEMENT_FAILED"})
TIMED_OUT_REASON = "the market maker did not confirm in time"


class Resolution(StrEnum):
    CONFIRMED = "confirmed"
    TIMED_OUT = "timed_out"
    NOT_PENDING = "not_pending"  # someone else ended this last look first


LAST_LOOKS_RESOLVED = Counter(
    "otc_last_looks_resolved_total",
    "Last looks ended from the reservation's state, by who ended them (sweeper, late_answer, "
    "reconciler) and how (confirmed, timed_out, not_pending)",
    ["path", "resolution"],
)


async def confirm(tx: Tx, order: Order, quote: Quote) -> None:
    """Moves the pending `order` to CONFIRMED and queues its TradeConfirmed. The trade
    id derives from the reservation, so every path that confirms names one trade."""
    now = tx.now()
    assert order.reservation_id is not None, "a pending order holds a reservation"
    order.apply(OrderEvent.COUNTERPARTY_CONFIRM, now)
    order.trade_id = derived_id("trade", order.rfq_id, order.reservation_id)
    await tx.orders.save(order)
    tx.emit_state(order, OrderEvent.COUNTERPARTY_CONFIRM)
    tx.emit(topics.TRADE_CONFIRMED, order.rfq_id, messages.trade_confirmed(order, quote, now))


async def credit_committed(deps: Dependencies, reservation_id: str, why: str) -> bool:
    """Whether credit was committed on the reservation; if not, it is released now,
    so that it can no longer be: the answer is final either way."""
    if await deps.risk.status(reservation_id) in COMMITTED:
        return True
    released = await deps.risk.release(reservation_id, why)
    # refused only once committed: a Commit got in between the two calls
    return not released.ok and await deps.risk.status(reservation_id) in COMMITTED


async def resolve(
    deps: Dependencies,
    rfq_id: str,
    reservation_id: str,
    *,
    path: str,
    cause: Received | None = None,
    reason: str = TIMED_OUT_REASON,
) -> Resolution:
    """Ends the last look of `rfq_id` on `reservation_id` as its reservation says.
    With `cause`, the message is recorded as processed in the same transaction."""
    committed = await credit_committed(deps, reservation_id, reason)
    resolution = await transaction(
        deps, lambda tx: _end(tx, rfq_id, reservation_id, committed, reason), once=cause
    )
    if resolution is DUPLICATE:
        resolution = Resolution.NOT_PENDING
    LAST_LOOKS_RESOLVED.labels(path, resolution.value).inc()
    return resolution


async def _end(
    tx: Tx, rfq_id: str, reservation_id: str, committed: bool, reason: str
) -> Resolution:
    order = await tx.orders.get(rfq_id)
    if order is None or not order.pending_on(reservation_id):
        return Resolution.NOT_PENDING
    if committed:
        quote = await tx.orders.get_quote(order.accepted_quote_id or "")
        assert quote is not None, "a pending order's quote is recorded"
        await confirm(tx, order, quote)
        return Resolution.CONFIRMED
    order.end_confirmation(OrderEvent.LAST_LOOK_TIMEOUT, tx.now())
    await tx.orders.save(order)
    tx.emit_state(order, OrderEvent.LAST_LOOK_TIMEOUT, reason)
    return Resolution.TIMED_OUT
