"""RFQs arriving, quotes arriving and withdrawn, and the trader cancelling."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client import Counter

from order_core.adapters.repository import OrderRepository
from order_core.domain.lifecycle import OPEN_STATES, IllegalTransition, OrderEvent, OrderState
from order_core.domain.order import Order, Quote
from order_core.metrics import RFQ_RECORDED, RFQ_TO_FIRST_QUOTE
from order_core.service_layer import messages
from order_core.service_layer.context import (
    CONSUMER,
    Context,
    emit_result,
    emit_state,
    refuse,
    retry_on_conflict,
    unknown_command_target,
    unknown_order,
)
from otc.bus import topics
from otc.bus.envelope import InvalidMessage, Message
from otc.contracts import events_pb2 as ev
from otc.instruments import INSTRUMENTS
from otc.logging import get_logger
from otc.money import InvalidDecimal, parse_decimal
from otc.sides import from_proto
from otc.text import clean_text

log = get_logger(__name__)

QUOTES_REFUSED = Counter(
    "otc_order_core_quotes_refused_total", "Quotes order_core would not record", ["reason"]
)


async def on_rfq_requested(ctx: Context, msg: Message) -> None:
    p = msg.payload
    assert isinstance(p, ev.RfqRequested)
    if not p.rfq_id or not p.requester or p.instrument not in INSTRUMENTS:
        raise InvalidMessage("RfqRequested needs rfq_id, requester and a known instrument")
    try:
        side = from_proto(p.side)
        quantity = parse_decimal(p.quantity, field="quantity", positive=True)
    except ValueError as exc:
        raise InvalidMessage(str(exc)) from None
    now = ctx.clock.now()
    order = Order(
        rfq_id=p.rfq_id,
        requester=p.requester,
        instrument=p.instrument,
        side=side,
        quantity=quantity,
        counterparties=tuple(p.counterparties),
        anonymous=p.anonymous,
        rfq_expires_at=p.expires_at.ToDatetime(tzinfo=now.tzinfo),
        created_at=now,
        updated_at=now,
    )
    async with ctx.uow() as uow:
        if not await uow.mark_processed(CONSUMER, msg.event_id):
            return
        repo = OrderRepository(uow.conn)
        if await repo.add(order):
            log.info("rfq recorded", rfq_id=order.rfq_id, makers=len(order.counterparties))
            emit_state(uow, order, msg, RFQ_RECORDED)
            if not order.counterparties:
                order.apply(OrderEvent.RFQ_REJECTED, now)
                await repo.save(order)
                emit_state(uow, order, msg, OrderEvent.RFQ_REJECTED, "no eligible market maker")
        await uow.commit()


async def on_quote_submitted(ctx: Context, msg: Message) -> None:
    p = msg.payload
    assert isinstance(p, ev.QuoteSubmitted)
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
            valid_until=p.valid_until.ToDatetime(tzinfo=ctx.clock.now().tzinfo),
        )
    except InvalidDecimal as exc:
        raise InvalidMessage(str(exc)) from None
    if not quote.quote_id or (quote.bid_px is None and quote.offer_px is None):
        raise InvalidMessage("a quote needs a quote_id and a bid or an offer")
    first_quote_after: timedelta | None = None

    async def step() -> None:
        nonlocal first_quote_after
        first_quote_after = None
        now = ctx.clock.now()
        async with ctx.uow() as uow:
            if not await uow.mark_processed(CONSUMER, msg.event_id):
                return
            repo = OrderRepository(uow.conn)
            order = await repo.get(quote.rfq_id)
            if order is None:
                raise unknown_order(ctx, msg, quote.rfq_id, may_be_early=True)
            if quote.maker not in order.counterparties:
                raise InvalidMessage(f"{quote.maker} was not asked to quote on {order.rfq_id}")
            if quote.maker == order.requester:
                # Never QUOTED on its own RFQ: the maker side cannot check an
                # anonymous RFQ, so this is where a self-trade is stopped for sure.
                QUOTES_REFUSED.labels("self_trade").inc()
                log.warning("quote on the maker's own RFQ not recorded", rfq_id=order.rfq_id)
                await uow.commit()
                return
            if order.state in OPEN_STATES:
                before = order.state
                order.apply(OrderEvent.RECEIVE_QUOTE, now)
                await repo.save(order)
                if before is not order.state:
                    emit_state(uow, order, msg, OrderEvent.RECEIVE_QUOTE)
                    first_quote_after = now - order.created_at
            elif order.state is not OrderState.PENDING_CONFIRMATION:
                # Too late to matter; recorded as processed so it is not retried.
                await uow.commit()
                return
            # Kept during a last look too: the order may come back to QUOTED.
            if await repo.add_quote(quote, now):
                old = await repo.get_quote(p.replaces_quote_id) if p.replaces_quote_id else None
                if old is not None and (old.rfq_id, old.maker) == (quote.rfq_id, quote.maker):
                    # the trader sees the old quote go before the new one arrives
                    uow.emit(
                        topics.ORDER_EVENTS,
                        order.rfq_id,
                        messages.quote_withdrawal_recorded(
                            order, messages.replaced(old, msg.occurred_at)
                        ),
                        correlation_id=msg.correlation_id or order.rfq_id,
                        causation_id=msg.event_id,
                    )
                uow.emit(
                    topics.ORDER_EVENTS,
                    order.rfq_id,
                    messages.quote_recorded(order, p),
                    correlation_id=msg.correlation_id or order.rfq_id,
                    causation_id=msg.event_id,
                )
            await uow.commit()

    await retry_on_conflict(step)
    if first_quote_after is not None:
        RFQ_TO_FIRST_QUOTE.observe(first_quote_after.total_seconds())


async def on_quote_withdrawn(ctx: Context, msg: Message) -> None:
    p = msg.payload
    assert isinstance(p, ev.QuoteWithdrawn)
    if not p.rfq_id or not p.quote_id or not p.maker:
        raise InvalidMessage("QuoteWithdrawn needs rfq_id, quote_id and maker")
    withdrawal = ev.QuoteWithdrawn()
    withdrawal.CopyFrom(p)
    withdrawal.reason = clean_text(p.reason)

    async def step() -> None:
        async with ctx.uow() as uow:
            if not await uow.mark_processed(CONSUMER, msg.event_id):
                return
            repo = OrderRepository(uow.conn)
            order = await repo.get(p.rfq_id)
            if order is None:
                # its quote came first on this partition and already waited for the RFQ
                raise unknown_order(ctx, msg, p.rfq_id, may_be_early=False)
            quote = await repo.get_quote(p.quote_id)
            if quote is None or (quote.rfq_id, quote.maker) != (p.rfq_id, p.maker):
                # Its quote came first on this partition, so it was never recorded
                # (refused) or is another maker's: nothing to take back.
                log.warning("withdrawal of a quote not on record", rfq_id=p.rfq_id, maker=p.maker)
            elif order.state in (OrderState.QUOTED, OrderState.PENDING_CONFIRMATION):
                uow.emit(
                    topics.ORDER_EVENTS,
                    order.rfq_id,
                    messages.quote_withdrawal_recorded(order, withdrawal),
                    correlation_id=msg.correlation_id or order.rfq_id,
                    causation_id=msg.event_id,
                )
                log.info(
                    "quote withdrawn", rfq_id=p.rfq_id, maker=p.maker, reason=withdrawal.reason
                )
            await uow.commit()

    await retry_on_conflict(step)


async def on_cancel(ctx: Context, msg: Message) -> None:
    cmd = msg.payload
    assert isinstance(cmd, ev.CancelRfq)

    async def step() -> None:
        async with ctx.uow() as uow:
            repo = OrderRepository(uow.conn)
            order = await repo.get(cmd.rfq_id)
            if order is None or order.requester != cmd.trader:
                refusal = unknown_command_target(cmd.rfq_id)
            else:
                try:
                    order.apply(OrderEvent.CANCEL, ctx.clock.now())
                    refusal = None
                except IllegalTransition as exc:
                    refusal = ("wrong_state", str(exc))
            if refusal is None and order is not None:
                if not await uow.mark_processed(CONSUMER, msg.event_id):
                    return
                await repo.save(order)
                emit_state(uow, order, msg, OrderEvent.CANCEL, "cancelled by the trader")
                emit_result(
                    uow,
                    msg,
                    rfq_id=order.rfq_id,
                    requester=order.requester,
                    state=order.state.value,
                    accepted=True,
                )
                await uow.commit()
                log.info("rfq cancelled", rfq_id=order.rfq_id)
                return
        assert refusal is not None
        await refuse(ctx, msg, cmd.rfq_id, *refusal)

    await retry_on_conflict(step)
