"""What order_core does with each message. Handlers are plain functions registered
in a dict by payload type; every one is idempotent on the message's event_id.

Effects outside PostgreSQL (taking the quote in Redis, freezing credit) come before
the transaction that records them, and are themselves idempotent on the command id,
so a crash or a redelivery in between repeats them harmlessly.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from order_core.adapters.repository import ConcurrentUpdate, OrderRepository
from order_core.adapters.risk_client import CreditLeg, RiskClient
from order_core.adapters.tables import OUTBOX_TABLES
from order_core.domain.lifecycle import IllegalTransition, OrderEvent, OrderState
from order_core.domain.order import AcceptRefused, Order, Quote
from order_core.service_layer import messages
from otc.bus import topics
from otc.bus.envelope import InvalidMessage, Message
from otc.clock import Clock
from otc.contracts import events_pb2 as ev
from otc.errors import TransientError
from otc.ids import derived_id
from otc.instruments import INSTRUMENTS
from otc.logging import get_logger
from otc.money import InvalidDecimal, parse_decimal
from otc.quote_book import QuoteBook, TakeOutcome
from otc.sides import from_proto
from otc.unit_of_work import UnitOfWork

log = get_logger(__name__)

CONSUMER = "order-core"
VERSION_RETRIES = 8
# A quote for an RFQ order_core has not seen may simply have overtaken the
# RfqRequested on the other topic; it is retried (holding up its partition) for at
# most this long, then dead-lettered.
UNKNOWN_ORDER_GRACE = timedelta(seconds=10)


@dataclass(frozen=True)
class Context:
    engine: AsyncEngine
    quotes: QuoteBook
    risk: RiskClient
    clock: Clock
    last_look_window: timedelta
    reservation_ttl: timedelta

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.engine, OUTBOX_TABLES, producer="order-core", clock=self.clock)


Handler = Callable[[Context, Message], Awaitable[None]]


async def _retry_on_conflict(step: Callable[[], Awaitable[None]]) -> None:
    for _ in range(VERSION_RETRIES - 1):
        try:
            return await step()
        except ConcurrentUpdate:
            continue
    await step()


def _unknown_order(ctx: Context, msg: Message, rfq_id: str, *, may_be_early: bool) -> Exception:
    """Last-look answers and settlement results can only follow an order order_core
    created, so for them an unknown RFQ is final; a quote may just be early."""
    if not may_be_early or ctx.clock.now() - msg.occurred_at > UNKNOWN_ORDER_GRACE:
        return InvalidMessage(f"unknown rfq {rfq_id}")
    return TransientError(f"rfq {rfq_id} not yet known")


def _emit_state(uow: UnitOfWork, order: Order, msg: Message, event: str, reason: str = "") -> None:
    uow.emit(
        topics.ORDER_EVENTS,
        order.rfq_id,
        messages.state_changed(order, event, reason),
        correlation_id=msg.correlation_id or order.rfq_id,
        causation_id=msg.event_id,
    )


async def _already_processed(ctx: Context, event_id: str) -> bool:
    table = OUTBOX_TABLES.processed_events
    async with ctx.engine.connect() as conn:
        row = await conn.execute(
            select(table.c.event_id).where(
                table.c.consumer == CONSUMER, table.c.event_id == event_id
            )
        )
        return row.first() is not None


# -- RFQs -------------------------------------------------------------------------


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
            _emit_state(uow, order, msg, "RfqRequested")
            if not order.counterparties:
                order.apply(OrderEvent.RFQ_REJECTED, now)
                await repo.save(order)
                _emit_state(uow, order, msg, OrderEvent.RFQ_REJECTED, "no eligible market maker")
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

    async def step() -> None:
        now = ctx.clock.now()
        async with ctx.uow() as uow:
            if not await uow.mark_processed(CONSUMER, msg.event_id):
                return
            repo = OrderRepository(uow.conn)
            order = await repo.get(quote.rfq_id)
            if order is None:
                raise _unknown_order(ctx, msg, quote.rfq_id, may_be_early=True)
            if quote.maker not in order.counterparties:
                raise InvalidMessage(f"{quote.maker} was not asked to quote on {order.rfq_id}")
            if order.state in (OrderState.RFQ_SENT, OrderState.QUOTED):
                before = order.state
                order.apply(OrderEvent.RECEIVE_QUOTE, now)
                await repo.save(order)
                if before is not order.state:
                    _emit_state(uow, order, msg, OrderEvent.RECEIVE_QUOTE)
            elif order.state is not OrderState.PENDING_CONFIRMATION:
                # Too late to matter; recorded as processed so it is not retried.
                await uow.commit()
                return
            # Kept during a last look too: the order may come back to QUOTED.
            if await repo.add_quote(quote, now):
                uow.emit(
                    topics.ORDER_EVENTS,
                    order.rfq_id,
                    messages.quote_recorded(order, p),
                    correlation_id=msg.correlation_id or order.rfq_id,
                    causation_id=msg.event_id,
                )
            await uow.commit()

    await _retry_on_conflict(step)


# -- accept -------------------------------------------------------------------------


async def _refuse(ctx: Context, msg: Message, rfq_id: str, code: str, reason: str) -> None:
    async with ctx.uow() as uow:
        if not await uow.mark_processed(CONSUMER, msg.event_id):
            return
        order = await OrderRepository(uow.conn).get(rfq_id)
        requester = order.requester if order else ""
        uow.emit(
            topics.ORDER_EVENTS,
            rfq_id,
            messages.command_result(
                command_id=msg.event_id,
                rfq_id=rfq_id,
                requester=requester,
                state=order.state.value if order else "",
                accepted=False,
                reason_code=code,
                reason=reason,
            ),
            correlation_id=msg.correlation_id or rfq_id,
            causation_id=msg.event_id,
        )
        await uow.commit()
    log.info("command refused", rfq_id=rfq_id, code=code, reason=reason)


async def on_accept_quote(ctx: Context, msg: Message) -> None:
    cmd = msg.payload
    assert isinstance(cmd, ev.AcceptQuote)
    command_id = msg.event_id
    if await _already_processed(ctx, command_id):
        return
    try:
        requested_side = from_proto(cmd.side) if cmd.side else None
    except ValueError as exc:
        raise InvalidMessage(str(exc)) from None
    now = ctx.clock.now()
    async with ctx.engine.connect() as conn:
        repo = OrderRepository(conn)
        order = await repo.get(cmd.rfq_id)
        quote = await repo.get_quote(cmd.quote_id) if order is not None else None
    if order is None or order.requester != cmd.trader:
        return await _refuse(ctx, msg, cmd.rfq_id, *_unknown_command_target(ctx, msg, cmd.rfq_id))
    if order.state is not OrderState.QUOTED:
        reason = str(IllegalTransition(order.state, OrderEvent.ACCEPT_QUOTE))
        return await _refuse(ctx, msg, order.rfq_id, "wrong_state", reason)
    if quote is None:
        return await _refuse(ctx, msg, order.rfq_id, "unknown_quote", f"no quote {cmd.quote_id}")
    try:
        fill = order.fill_for(quote, requested_side, now)
    except AcceptRefused as exc:
        return await _refuse(ctx, msg, order.rfq_id, exc.code, exc.message)

    taken, _ = await ctx.quotes.take(order.rfq_id, quote.quote_id, taker=command_id)
    if taken is TakeOutcome.MISSING:
        return await _refuse(
            ctx, msg, order.rfq_id, "quote_expired", "quote has expired or was withdrawn"
        )
    if taken is TakeOutcome.ALREADY_TAKEN:
        return await _refuse(ctx, msg, order.rfq_id, "quote_taken", "quote was already accepted")

    reservation_id = derived_id("reservation", command_id)
    currency = INSTRUMENTS[order.instrument].quote
    amount = order.quantity * fill.price
    answer = await ctx.risk.freeze(
        reservation_id,
        order.rfq_id,
        [
            CreditLeg(order.requester, quote.maker, amount, currency),
            CreditLeg(quote.maker, order.requester, amount, currency),
        ],
        deadline=now + ctx.reservation_ttl,
    )
    if not answer.ok:
        return await _risk_rejected(ctx, msg, order.rfq_id, answer.message)

    async def step() -> None:
        now = ctx.clock.now()
        async with ctx.uow() as uow:
            if not await uow.mark_processed(CONSUMER, command_id):
                return
            repo = OrderRepository(uow.conn)
            current = await repo.get(order.rfq_id)
            assert current is not None
            deadline = now + ctx.last_look_window
            try:
                current.begin_confirmation(
                    quote=quote,
                    fill=fill,
                    command_id=command_id,
                    reservation_id=reservation_id,
                    lastlook_deadline=deadline,
                    now=now,
                )
            except IllegalTransition as exc:
                raise _LostRace(current.state, str(exc)) from None
            await repo.save(current)
            correlation = msg.correlation_id or current.rfq_id
            uow.emit(
                topics.ORDER_EVENTS,
                current.rfq_id,
                messages.command_result(
                    command_id=command_id,
                    rfq_id=current.rfq_id,
                    requester=current.requester,
                    state=current.state.value,
                    accepted=True,
                ),
                correlation_id=correlation,
                causation_id=command_id,
            )
            _emit_state(uow, current, msg, OrderEvent.ACCEPT_QUOTE)
            uow.emit(
                topics.LASTLOOK_REQUESTS,
                current.rfq_id,
                messages.last_look_request(current, quote, deadline),
                correlation_id=correlation,
                causation_id=command_id,
            )
            await uow.commit()

    try:
        await _retry_on_conflict(step)
    except _LostRace as lost:
        # Another accept or a cancel got there first: our credit goes back.
        await ctx.risk.release(reservation_id, "accept lost the race")
        await _refuse(ctx, msg, order.rfq_id, "wrong_state", lost.reason)


class _LostRace(Exception):
    def __init__(self, state: OrderState, reason: str) -> None:
        super().__init__(reason)
        self.state = state
        self.reason = reason


async def _risk_rejected(ctx: Context, msg: Message, rfq_id: str, reason: str) -> None:
    async def step() -> None:
        async with ctx.uow() as uow:
            if not await uow.mark_processed(CONSUMER, msg.event_id):
                return
            repo = OrderRepository(uow.conn)
            order = await repo.get(rfq_id)
            assert order is not None
            if order.state is OrderState.QUOTED:
                order.apply(OrderEvent.RISK_REJECTED, ctx.clock.now())
                await repo.save(order)
            uow.emit(
                topics.ORDER_EVENTS,
                rfq_id,
                messages.command_result(
                    command_id=msg.event_id,
                    rfq_id=rfq_id,
                    requester=order.requester,
                    state=order.state.value,
                    accepted=False,
                    reason_code="insufficient_credit",
                    reason=reason,
                ),
                correlation_id=msg.correlation_id or rfq_id,
                causation_id=msg.event_id,
            )
            await uow.commit()

    await _retry_on_conflict(step)


# -- last look ----------------------------------------------------------------------


async def on_last_look_response(ctx: Context, msg: Message) -> None:
    p = msg.payload
    assert isinstance(p, ev.LastLookResponse)
    if await _already_processed(ctx, msg.event_id):
        return
    async with ctx.engine.connect() as conn:
        order = await OrderRepository(conn).get(p.rfq_id)
    if order is None:
        raise _unknown_order(ctx, msg, p.rfq_id, may_be_early=False)
    pending = (
        order.state is OrderState.PENDING_CONFIRMATION and order.reservation_id == p.reservation_id
    )
    event, reason = OrderEvent.COUNTERPARTY_REJECT, p.reason or "rejected by the market maker"
    if pending and p.confirmed:
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
                _emit_state(uow, current, msg, event)
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
                _emit_state(uow, current, msg, event, reason)
            await uow.commit()

    await _retry_on_conflict(step)


# -- cancel and settlement -----------------------------------------------------------


async def on_cancel(ctx: Context, msg: Message) -> None:
    cmd = msg.payload
    assert isinstance(cmd, ev.CancelRfq)

    async def step() -> None:
        async with ctx.uow() as uow:
            repo = OrderRepository(uow.conn)
            order = await repo.get(cmd.rfq_id)
            if order is None or order.requester != cmd.trader:
                refusal = _unknown_command_target(ctx, msg, cmd.rfq_id)
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
                _emit_state(uow, order, msg, OrderEvent.CANCEL, "cancelled by the trader")
                uow.emit(
                    topics.ORDER_EVENTS,
                    order.rfq_id,
                    messages.command_result(
                        command_id=msg.event_id,
                        rfq_id=order.rfq_id,
                        requester=order.requester,
                        state=order.state.value,
                        accepted=True,
                    ),
                    correlation_id=msg.correlation_id or order.rfq_id,
                    causation_id=msg.event_id,
                )
                await uow.commit()
                return
        assert refusal is not None
        await _refuse(ctx, msg, cmd.rfq_id, *refusal)

    await _retry_on_conflict(step)


def _unknown_command_target(ctx: Context, msg: Message, rfq_id: str) -> tuple[str, str]:
    """The edge sends commands only for RFQs it created, so an unknown one is most
    likely still on its way on rfq.requests: wait for it a little, then refuse."""
    if ctx.clock.now() - msg.occurred_at <= UNKNOWN_ORDER_GRACE:
        raise TransientError(f"rfq {rfq_id} not yet known")
    return ("not_found", f"no RFQ {rfq_id}")


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
                raise _unknown_order(ctx, msg, rfq_id, may_be_early=False)
            order.apply(event, ctx.clock.now())
            await repo.save(order)
            _emit_state(uow, order, msg, event, reason)
            await uow.commit()

    await _retry_on_conflict(step)


async def on_trade_settled(ctx: Context, msg: Message) -> None:
    p = msg.payload
    assert isinstance(p, ev.TradeSettled)
    await _on_settlement(ctx, msg, p.rfq_id, OrderEvent.SETTLE, "")


async def on_settlement_failed(ctx: Context, msg: Message) -> None:
    p = msg.payload
    assert isinstance(p, ev.SettlementFailed)
    await _on_settlement(ctx, msg, p.rfq_id, OrderEvent.SETTLEMENT_FAIL, p.reason)


HANDLERS: dict[str, Handler] = {
    "otc.v1.RfqRequested": on_rfq_requested,
    "otc.v1.QuoteSubmitted": on_quote_submitted,
    "otc.v1.AcceptQuote": on_accept_quote,
    "otc.v1.CancelRfq": on_cancel,
    "otc.v1.LastLookResponse": on_last_look_response,
    "otc.v1.TradeSettled": on_trade_settled,
    "otc.v1.SettlementFailed": on_settlement_failed,
}
