"""Accepting a quote: take it from Redis, freeze credit, then move the order to
PENDING_CONFIRMATION, or answer the trader with the reason it cannot be done.

Effects outside PostgreSQL (taking the quote, freezing credit) come before the
transaction that records them and are idempotent on the command id, so a crash or
a redelivery in between repeats them harmlessly. An accept that is refused after
them gives both back, but only once its refusal is recorded (see _refuse_undoing).
"""

from __future__ import annotations

from order_core.adapters.repository import OrderRepository
from order_core.adapters.risk_client import CreditLeg
from order_core.domain.lifecycle import IllegalTransition, OrderEvent, OrderState
from order_core.domain.order import AcceptRefused, Quote
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
from otc import failpoints
from otc.bus import topics
from otc.bus.envelope import InvalidMessage, Message
from otc.contracts import events_pb2 as ev
from otc.ids import derived_id
from otc.instruments import INSTRUMENTS
from otc.logging import get_logger
from otc.quote_book import TakeOutcome
from otc.sides import from_proto

log = get_logger(__name__)

# What a Freeze may answer for an accept to go on: FROZEN, or COMMITTED when an
# earlier attempt got as far as a confirmed trade (its own step then finds it done).
HELD = frozenset({"FROZEN", "COMMITTED", "SETTLED", "SETTLEMENT_FAILED"})

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
        return await _refuse_undoing(ctx, msg, order.rfq_id, quote, "wrong_state", reason)
    if quote is None:
        return await refuse(ctx, msg, order.rfq_id, "unknown_quote", f"no quote {cmd.quote_id}")
    try:
        fill = order.fill_for(quote, requested_side, now)
    except AcceptRefused as exc:
        return await _refuse_undoing(ctx, msg, order.rfq_id, quote, exc.code, exc.message)

    taken, _ = await ctx.quotes.take(
        order.rfq_id, quote.quote_id, taker=command_id, maker=quote.maker
    )
    if taken is not TakeOutcome.TAKEN:
        return await refuse(ctx, msg, order.rfq_id, *TAKE_REFUSALS[taken])
    failpoints.hit("order_core.accept.after_take")

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
        return await _risk_rejected(ctx, msg, order.rfq_id, quote, answer.code, answer.message)
    if answer.status not in HELD:
        # A redelivered accept whose reservation was released meanwhile (its
        # deadline passed, or the reconciler found no order holding it).
        why = f"the credit reservation of this accept is {answer.status.lower()}"
        return await _refuse_undoing(ctx, msg, order.rfq_id, quote, "reservation_expired", why)
    failpoints.hit("order_core.accept.after_freeze")
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
        # Another accept or a cancel got there first: our credit and quote go back.
        return await _refuse_undoing(ctx, msg, order.rfq_id, quote, "wrong_state", lost.reason)
    return "accepted" if answered else None


async def _refuse_undoing(
    ctx: Context, msg: Message, rfq_id: str, quote: Quote | None, code: str, reason: str
) -> str | None:
    """Refuses the accept, then undoes what an earlier attempt of this very command
    may have done before a crash (taken the quote, frozen credit). Undone only once
    the refusal is on record: from then on no attempt of this command can ever
    commit an order pending on that credit, whereas one that checked before an
    earlier attempt committed would otherwise release the credit of a live order."""
    code_answered = await refuse(ctx, msg, rfq_id, code, reason)
    if code_answered is not None:
        await _undo_attempt(ctx, rfq_id, quote, msg.event_id, "accept could not complete")
    return code_answered


async def _undo_attempt(
    ctx: Context, rfq_id: str, quote: Quote | None, command_id: str, why: str
) -> None:
    """Gives back the quote the accept `command_id` took, and then the credit it may
    have frozen after taking it; nothing if it took nothing."""
    if quote is None:
        return
    given_back = await ctx.quotes.give_back(
        rfq_id, quote.quote_id, taker=command_id, maker=quote.maker
    )
    if given_back is not None:
        await ctx.risk.release(derived_id("reservation", command_id), why)


class _LostRace(Exception):
    def __init__(self, state: OrderState, reason: str) -> None:
        super().__init__(reason)
        self.state = state
        self.reason = reason


async def _risk_rejected(
    ctx: Context, msg: Message, rfq_id: str, quote: Quote, code: str, reason: str
) -> str | None:
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
    if not answered:
        return None
    # Refused by risk (for want of credit, most often): the quote stays the trader's
    # to accept once the credit is there, and the maker's to replace or withdraw.
    await ctx.quotes.give_back(rfq_id, quote.quote_id, taker=msg.event_id, maker=quote.maker)
    return code
