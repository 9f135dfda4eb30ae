"""The end of a deal: the maker's last look, then settlement's verdict."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client import Counter

from order_core.adapters.repository import OrderRepository
from order_core.domain.lifecycle import OrderEvent, OrderState
from order_core.domain.order import Order
from order_core.metrics import ACCEPT_TO_CONFIRMED
from order_core.service_layer.context import (
    CONSUMER,
    Context,
    already_processed,
    emit_state,
    retry_on_conflict,
    unknown_order,
)
from order_core.service_layer.resolving import confirm, credit_committed, resolve
from otc import failpoints
from otc.bus.envelope import Message
from otc.contracts import events_pb2 as ev
from otc.logging import get_logger
from otc.money import InvalidDecimal, fmt, parse_decimal
from otc.text import clean_text

log = get_logger(__name__)

LAST_LOOKS_IGNORED = Counter(
    "otc_last_look_answers_ignored_total",
    "Last-look answers that did not decide the trade: sent after the window (`late`: the "
    "reservation's state ended the last look), or from another maker",
    ["reason"],
)


async def on_last_look_response(ctx: Context, msg: Message) -> None:
    """A last-look answer counts when the maker sent it: the envelope's time, stamped
    by the quoting service, within the order's window. One that order_core handles
    late (after an outage, a redelivery, a retried Commit) still trades when it was
    sent in time; one sent after the window ends the last look as the sweeper would."""
    p = msg.payload
    assert isinstance(p, ev.LastLookResponse)
    if await already_processed(ctx, msg.event_id):
        return
    async with ctx.engine.connect() as conn:
        repo = OrderRepository(conn)
        order = await repo.get(p.rfq_id)
        accepted = await repo.get_quote(order.accepted_quote_id or "") if order else None
    if order is None:
        raise unknown_order(ctx, msg, p.rfq_id, may_be_early=False)
    pending = (
        order.state is OrderState.PENDING_CONFIRMATION and order.reservation_id == p.reservation_id
    )
    deadline = order.lastlook_deadline
    if pending and accepted is not None and p.maker != accepted.maker:
        # Only the maker of the accepted quote may confirm or reject it.
        return await _ignore(ctx, msg, p, "other_maker", "last-look answer from another maker")
    if pending and deadline is not None and msg.occurred_at > deadline:
        LAST_LOOKS_IGNORED.labels("late").inc()
        log.warning("last-look answer sent after the window", rfq_id=p.rfq_id, maker=p.maker)
        await resolve(ctx, p.rfq_id, p.reservation_id, path="late_answer", cause=msg)
        return
    event = OrderEvent.COUNTERPARTY_REJECT
    reason = clean_text(p.reason) or "rejected by the market maker"
    mismatch = _mismatch(order, p) if pending and p.confirmed else None
    if mismatch is not None:
        reason = f"confirmation refused: {mismatch}"
    if pending and p.confirmed and mismatch is None:
        answer = await ctx.risk.commit(p.reservation_id)
        if answer.ok:
            failpoints.hit("order_core.confirm.after_commit")
            event, reason = OrderEvent.COUNTERPARTY_CONFIRM, ""
        else:
            reason = f"credit reservation could not be committed: {answer.message}"
    elif pending and await credit_committed(ctx, p.reservation_id, reason):
        # An earlier answer from the maker committed the credit and then lost its
        # own transaction: the credit is spent, so the trade it stands for stands.
        event, reason = OrderEvent.COUNTERPARTY_CONFIRM, ""
    confirmed_after: timedelta | None = None

    async def step() -> None:
        nonlocal confirmed_after
        confirmed_after = None
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
                if current.lastlook_deadline is not None:
                    # the accept set the deadline one last-look window after itself
                    accepted_at = current.lastlook_deadline - ctx.last_look_window
                    confirmed_after = now - accepted_at
                await confirm(
                    uow,
                    repo,
                    current,
                    quote,
                    correlation_id=msg.correlation_id or current.rfq_id,
                    causation_id=msg.event_id,
                )
            elif still_pending:
                current.end_confirmation(event, now)
                await repo.save(current)
                emit_state(uow, current, msg, event, reason)
            await uow.commit()

    await retry_on_conflict(step)
    if confirmed_after is not None:
        ACCEPT_TO_CONFIRMED.observe(confirmed_after.total_seconds())
    log.info("last look answered", rfq_id=p.rfq_id, outcome=event.value, reason=reason)


def _mismatch(order: Order, p: ev.LastLookResponse) -> str | None:
    """Why a confirmation does not confirm the accepted quote, or None if it does."""
    if p.quote_id != order.accepted_quote_id:
        return f"it names quote {p.quote_id!r}, not the accepted quote {order.accepted_quote_id}"
    try:
        price = parse_decimal(p.price, field="price", positive=True)
    except InvalidDecimal:
        return f"its price {p.price!r} is not the accepted price {order.price}"
    if price != order.price:
        return f"its price {fmt(price)} is not the accepted price {order.price}"
    return None


async def _ignore(ctx: Context, msg: Message, p: ev.LastLookResponse, label: str, why: str) -> None:
    async with ctx.uow() as uow:
        if await uow.mark_processed(CONSUMER, msg.event_id):
            await uow.commit()
    LAST_LOOKS_IGNORED.labels(label).inc()
    log.warning(f"{why} ignored", rfq_id=p.rfq_id, maker=p.maker, quote_id=p.quote_id)


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
