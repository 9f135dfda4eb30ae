"""The end of a deal: the maker's last look, then settlement's verdict."""

from __future__ import annotations

from order_core.adapters.repository import OrderRepository
from order_core.domain.lifecycle import OrderEvent, OrderState
from order_core.service_layer import messages
from order_core.service_layer.context import (
    CONSUMER,
    Context,
    already_processed,
    emit_state,
    retry_on_conflict,
    unknown_order,
)
from otc.bus import topics
from otc.bus.envelope import Message
from otc.contracts import events_pb2 as ev
from otc.ids import derived_id
from otc.logging import get_logger

log = get_logger(__name__)


async def on_last_look_response(ctx: Context, msg: Message) -> None:
    p = msg.payload
    assert isinstance(p, ev.LastLookResponse)
    if await already_processed(ctx, msg.event_id):
        return
    async with ctx.engine.connect() as conn:
        order = await OrderRepository(conn).get(p.rfq_id)
    if order is None:
        raise unknown_order(ctx, msg, p.rfq_id, may_be_early=False)
    pending = (
        order.state is OrderState.PENDING_CONFIRMATION and order.reservation_id == p.reservation_id
    )
    event, reason = OrderEvent.COUNTERPARTY_REJECT, p.reason or "rejected by the market maker"
    deadline = order.lastlook_deadline
    if pending and deadline is not None and ctx.clock.now() > deadline:
        # Too late: a confirmation after the window must not commit credit.
        event, reason = OrderEvent.LAST_LOOK_TIMEOUT, "the market maker answered too late"
        await ctx.risk.release(p.reservation_id, reason)
    elif pending and p.confirmed:
        answer = await ctx.risk.commit(p.reservation_id)
        if answer.ok:
            event, reason = OrderEvent.COUNTERPARTY_CONFIRM, ""
        else:
            reason = f"credit reservation could not be committed: {answer.message}"
    elif pending:
        await ctx.risk.release(p.reservation_id, reason)

    async def step() -> None:
        now = ctx.clock.now()
        async with ctx.uow() as uow:
            if not await uow.mark_processed(CONSUMER, msg.event_id):
                return
            repo = OrderRepository(uow.conn)
            current = await repo.get(p.rfq_id)
            assert current is not None
            still_pending = (
                current.state is OrderState.PENDING_CONFIRMATION
                and current.reservation_id == p.reservation_id
            )
            if still_pending and event is OrderEvent.COUNTERPARTY_CONFIRM:
                quote = await repo.get_quote(current.accepted_quote_id or "")
                assert quote is not None
                current.apply(event, now)
                current.trade_id = derived_id("trade", current.rfq_id, p.reservation_id)
                await repo.save(current)
                emit_state(uow, current, msg, event)
                uow.emit(
                    topics.TRADE_CONFIRMED,
                    current.rfq_id,
                    messages.trade_confirmed(current, quote, now),
                    correlation_id=msg.correlation_id or current.rfq_id,
                    causation_id=msg.event_id,
                )
            elif still_pending:
                current.end_confirmation(event, now)
                await repo.save(current)
                emit_state(uow, current, msg, event, reason)
            await uow.commit()

    await retry_on_conflict(step)
    log.info("last look answered", rfq_id=p.rfq_id, outcome=event.value, reason=reason)


async def _on_settlement(
    ctx: Context, msg: Message, rfq_id: str, event: OrderEvent, reason: str
) -> None:
    async def step() -> None:
        async with ctx.uow() as uow:
            if not await uow.mark_processed(CONSUMER, msg.event_id):
                return
            repo = OrderRepository(uow.conn)
            order = await repo.get(rfq_id)
            if order is None:
                raise unknown_order(ctx, msg, rfq_id, may_be_early=False)
            order.apply(event, ctx.clock.now())
            await repo.save(order)
            emit_state(uow, order, msg, event, reason)
            await uow.commit()

    await retry_on_conflict(step)


async def on_trade_settled(ctx: Context, msg: Message) -> None:
    p = msg.payload
    assert isinstance(p, ev.TradeSettled)
    await _on_settlement(ctx, msg, p.rfq_id, OrderEvent.SETTLE, "")


async def on_settlement_failed(ctx: Context, msg: Message) -> None:
    p = msg.payload
    assert isinstance(p, ev.SettlementFailed)
    await _on_settlement(ctx, msg, p.rfq_id, OrderEvent.SETTLEMENT_FAIL, p.reason)
