"""Accepting a quote: take it from Redis, freeze credit, then move the order to
PENDING_CONFIRMATION, or answer the trader with the reason it cannot be done.

Effects outside PostgreSQL (taking the quote, freezing credit) come before the
transaction that records them and are idempotent on the command id, so a crash or
a redelivery in between repeats them harmlessly.
"""

from __future__ import annotations

from order_core.adapters.repository import OrderRepository
from order_core.adapters.risk_client import CreditLeg
from order_core.domain.lifecycle import IllegalTransition, OrderEvent, OrderState
from order_core.domain.order import AcceptRefused
from order_core.metrics import ACCEPTS
from order_core.service_layer import messages
from order_core.service_layer.context import (
    CONSUMER,
    Context,
    already_processed,
    emit_result,
    emit_state,
    refuse,
    retry_on_conflict,
    unknown_command_target,
)
from otc.bus import topics
from otc.bus.envelope import InvalidMessage, Message
from otc.contracts import events_pb2 as ev
from otc.ids import derived_id
from otc.instruments import INSTRUMENTS
from otc.logging import get_logger
from otc.quote_book import TakeOutcome
from otc.sides import from_proto

log = get_logger(__name__)

# Why a quote could not be taken, as the trader's 409 says it.
TAKE_REFUSALS: dict[TakeOutcome, tuple[str, str]] = {
    TakeOutcome.ALREADY_TAKEN: ("quote_taken", "quote was already accepted"),
    TakeOutcome.EXPIRED: ("quote_expired", "quote has expired"),
    TakeOutcome.WITHDRAWN: ("quote_withdrawn", "the market maker withdrew the quote"),
    TakeOutcome.REPLACED: ("quote_replaced", "the market maker replaced the quote with a new one"),
    # recorded here, so it was stored once: gone for longer than its tombstone
    TakeOutcome.UNKNOWN: ("quote_expired", "quote has expired"),
}


async def on_accept_quote(ctx: Context, msg: Message) -> None:
    outcome = await _accept(ctx, msg)
    if outcome is not None:
        ACCEPTS.labels(outcome).inc()


async def _accept(ctx: Context, msg: Message) -> str | None:
    """Returns how the accept was answered (`accepted` or the refusal's code), or
    None if it had been answered before."""
    cmd = msg.payload
    assert isinstance(cmd, ev.AcceptQuote)
    command_id = msg.event_id
    if await already_processed(ctx, command_id):
        return None
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
        return await refuse(ctx, msg, cmd.rfq_id, *unknown_command_target(cmd.rfq_id))
    if order.state is not OrderState.QUOTED:
        reason = str(IllegalTransition(order.state, OrderEvent.ACCEPT_QUOTE))
        await _undo_earlier_attempt(ctx, order.rfq_id, cmd.quote_id, command_id)
        return await refuse(ctx, msg, order.rfq_id, "wrong_state", reason)
    if quote is None:
        return await refuse(ctx, msg, order.rfq_id, "unknown_quote", f"no quote {cmd.quote_id}")
    try:
        fill = order.fill_for(quote, requested_side, now)
    except AcceptRefused as exc:
        await _undo_earlier_attempt(ctx, order.rfq_id, cmd.quote_id, command_id)
        return await refuse(ctx, msg, order.rfq_id, exc.code, exc.message)

    taken, _ = await ctx.quotes.take(
        order.rfq_id, quote.quote_id, taker=command_id, maker=quote.maker
    )
    if taken is not TakeOutcome.TAKEN:
        return await refuse(ctx, msg, order.rfq_id, *TAKE_REFUSALS[taken])

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
    answered = False

    async def step() -> None:
        nonlocal answered
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
            emit_result(
                uow,
                msg,
                rfq_id=current.rfq_id,
                requester=current.requester,
                state=current.state.value,
                accepted=True,
            )
            emit_state(uow, current, msg, OrderEvent.ACCEPT_QUOTE)
            uow.emit(
                topics.LASTLOOK_REQUESTS,
                current.rfq_id,
                messages.last_look_request(current, quote, deadline),
                correlation_id=msg.correlation_id or current.rfq_id,
                causation_id=command_id,
            )
            await uow.commit()
            answered = True
        log.info("quote accepted; last look requested", rfq_id=order.rfq_id, maker=quote.maker)

    try:
        await retry_on_conflict(step)
    except _LostRace as lost:
        # Another accept or a cancel got there first: our credit goes back.
        await ctx.risk.release(reservation_id, "accept lost the race")
        return await refuse(ctx, msg, order.rfq_id, "wrong_state", lost.reason)
    return "accepted" if answered else None


async def _undo_earlier_attempt(ctx: Context, rfq_id: str, quote_id: str, command_id: str) -> None:
    """A redelivered accept that can no longer succeed may have taken the quote and
    frozen credit before a crash: if the quote's taker is this very command, give
    the credit back now rather than at the reservation's deadline."""
    if await ctx.quotes.taker(rfq_id, quote_id) == command_id:
        await ctx.risk.release(derived_id("reservation", command_id), "accept could not complete")


class _LostRace(Exception):
    def __init__(self, state: OrderState, reason: str) -> None:
        super().__init__(reason)
        self.state = state
        self.reason = reason


async def _risk_rejected(ctx: Context, msg: Message, rfq_id: str, reason: str) -> str | None:
    code = "insufficient_credit"
    answered = False

    async def step() -> None:
        nonlocal answered
        async with ctx.uow() as uow:
            if not await uow.mark_processed(CONSUMER, msg.event_id):
                return
            repo = OrderRepository(uow.conn)
            order = await repo.get(rfq_id)
            assert order is not None
            if order.state is OrderState.QUOTED:
                order.apply(OrderEvent.RISK_REJECTED, ctx.clock.now())
                await repo.save(order)
            emit_result(
                uow,
                msg,
                rfq_id=rfq_id,
                requester=order.requester,
                state=order.state.value,
                accepted=False,
                code=code,
                reason=reason,
            )
            await uow.commit()
            answered = True
        log.info("accept refused by risk", rfq_id=rfq_id, reason=reason)

    await retry_on_conflict(step)
    return code if answered else None
