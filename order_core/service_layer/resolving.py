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

from order_core.adapters.repository import OrderRepository
from order_core.domain.lifecycle import OrderEvent, OrderState
from order_core.domain.order import Order, Quote
from order_core.service_layer import messages
from order_core.service_layer.context import CONSUMER, Context, retry_on_conflict
from otc.bus import topics
from otc.bus.envelope import Message
from otc.ids import derived_id
from otc.unit_of_work import UnitOfWork

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


async def confirm(
    uow: UnitOfWork,
    repo: OrderRepository,
    order: Order,
    quote: Quote,
    *,
    correlation_id: str,
    causation_id: str,
) -> None:
    """Moves the pending `order` to CONFIRMED and queues its TradeConfirmed. The trade
    id derives from the reservation, so every path that confirms names one trade."""
    now = uow.clock.now()
    assert order.reservation_id is not None, "a pending order holds a reservation"
    order.apply(OrderEvent.COUNTERPARTY_CONFIRM, now)
    order.trade_id = derived_id("trade", order.rfq_id, order.reservation_id)
    await repo.save(order)
    emit_change(uow, order, OrderEvent.COUNTERPARTY_CONFIRM, "", correlation_id, causation_id)
    uow.emit(
        topics.TRADE_CONFIRMED,
        order.rfq_id,
        messages.trade_confirmed(order, quote, now),
        correlation_id=correlation_id,
        causation_id=causation_id,
    )


def emit_change(
    uow: UnitOfWork,
    order: Order,
    event: OrderEvent,
    reason: str,
    correlation_id: str,
    causation_id: str,
) -> None:
    uow.emit(
        topics.ORDER_EVENTS,
        order.rfq_id,
        messages.state_changed(order, event, reason),
        correlation_id=correlation_id,
        causation_id=causation_id,
    )


async def credit_committed(ctx: Context, reservation_id: str, why: str) -> bool:
    """Whether credit was committed on the reservation; if not, it is released now,
    so that it can no longer be: the answer is final either way."""
    if await ctx.risk.status(reservation_id) in COMMITTED:
        return True
    released = await ctx.risk.release(reservation_id, why)
    # refused only once committed: a Commit got in between the two calls
    return not released.ok and await ctx.risk.status(reservation_id) in COMMITTED


async def resolve(
    ctx: Context,
    rfq_id: str,
    reservation_id: str,
    *,
    path: str,
    cause: Message | None = None,
    reason: str = TIMED_OUT_REASON,
) -> Resolution:
    """Ends the last look of `rfq_id` on `reservation_id` as its reservation says.
    With `cause`, the message is recorded as processed in the same transaction."""
    committed = await credit_committed(ctx, reservation_id, reason)
    resolution = Resolution.NOT_PENDING

    async def step() -> None:
        nonlocal resolution
        resolution = Resolution.NOT_PENDING
        async with ctx.uow() as uow:
            if cause is not None and not await uow.mark_processed(CONSUMER, cause.event_id):
                return
            repo = OrderRepository(uow.conn)
            order = await repo.get(rfq_id)
            if (
                order is not None
                and order.state is OrderState.PENDING_CONFIRMATION
                and order.reservation_id == reservation_id
            ):
                correlation_id = cause.correlation_id if cause else ""
                causation_id = cause.event_id if cause else ""
                if committed:
                    quote = await repo.get_quote(order.accepted_quote_id or "")
                    assert quote is not None, "a pending order's quote is recorded"
                    await confirm(
                        uow,
                        repo,
                        order,
                        quote,
                        correlation_id=correlation_id or rfq_id,
                        causation_id=causation_id,
                    )
                    resolution = Resolution.CONFIRMED
                else:
                    order.end_confirmation(OrderEvent.LAST_LOOK_TIMEOUT, uow.clock.now())
                    await repo.save(order)
                    emit_change(
                        uow,
                        order,
                        OrderEvent.LAST_LOOK_TIMEOUT,
                        reason,
                        correlation_id or rfq_id,
                        causation_id,
                    )
                    resolution = Resolution.TIMED_OUT
            await uow.commit()

    await retry_on_conflict(step)
    LAST_LOOKS_RESOLVED.labels(path, resolution.value).inc()
    return resolution
