"""Deadlines kept in the order rows, enforced by a sweeper: RFQ windows that close
and last looks that go unanswered. Rows are locked with SKIP LOCKED, so several
order_core replicas can sweep at once without doing the same order twice."""

from __future__ import annotations

from order_core.adapters.repository import OrderRepository
from order_core.domain.lifecycle import OrderEvent
from order_core.service_layer import messages
from order_core.service_layer.handlers import Context
from otc.bus import topics
from otc.logging import get_logger

log = get_logger(__name__)

BATCH = 100


async def expire_rfqs(ctx: Context) -> int:
    async with ctx.uow() as uow:
        now = ctx.clock.now()
        repo = OrderRepository(uow.conn)
        overdue = await repo.overdue_rfqs(now, BATCH)
        for order in overdue:
            order.apply(OrderEvent.RFQ_EXPIRED, now)
            await repo.save(order)
            uow.emit(
                topics.ORDER_EVENTS,
                order.rfq_id,
                messages.state_changed(order, OrderEvent.RFQ_EXPIRED, "response window closed"),
                correlation_id=order.rfq_id,
            )
        await uow.commit()
    return len(overdue)


async def time_out_last_looks(ctx: Context) -> int:
    async with ctx.uow() as uow:
        now = ctx.clock.now()
        repo = OrderRepository(uow.conn)
        overdue = await repo.overdue_last_looks(now, BATCH)
        for order in overdue:
            if order.reservation_id:
                # Inside the transaction on purpose: if the release fails, the
                # order stays pending and the next sweep tries again.
                released = await ctx.risk.release(order.reservation_id, "last look timed out")
                if not released.ok:
                    # Already committed: the maker's confirmation won the race and
                    # its handler is about to confirm the order; leave it be.
                    continue
            order.end_confirmation(OrderEvent.LAST_LOOK_TIMEOUT, now)
            await repo.save(order)
            uow.emit(
                topics.ORDER_EVENTS,
                order.rfq_id,
                messages.state_changed(
                    order, OrderEvent.LAST_LOOK_TIMEOUT, "the market maker did not confirm in time"
                ),
                correlation_id=order.rfq_id,
            )
        await uow.commit()
    if overdue:
        log.info("last looks timed out", count=len(overdue))
    return len(overdue)


async def sweep(ctx: Context) -> int:
    return await expire_rfqs(ctx) + await time_out_last_looks(ctx)
