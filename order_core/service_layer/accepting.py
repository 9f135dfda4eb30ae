"""Accepting a quote: take it from Redis, freeze credit, then move the order to
PENDING_CONFIRMATION, or answer the trader with the reason it cannot be done.

Effects outside PostgreSQL (taking the quote, freezing credit) come before the
transaction that records them and are idempotent on the command id, so a crash or
a redelivery in between repeats them harmlessly. An accept that is refused after
them gives both back, but only once its refusal is recorded (see _refuse_undoing).
"""

from __future__ import annotations

from order_core.adapters.risk_client import CreditLeg
from order_core.domain.lifecycle import IllegalTransition, OrderEvent
from order_core.domain.order import AcceptRefused, Fill, Quote
from order_core.metrics import ACCEPTS
from order_core.service_layer import messages
from order_core.service_layer.commands import AcceptQuote
from order_core.service_layer.transaction import (
    DUPLICATE,
    Dependencies,
    Tx,
    already_processed,
    refuse,
    transaction,
    unknown_command_target,
)
from otc import failpoints
from otc.bus import topics
from otc.ids import derived_id
from otc.instruments import INSTRUMENTS
from otc.logging import get_logger
from otc.quote_book import TakeOutcome

log = get_logger(__name__)

# What a Freeze may answer for an accept to go on: FROZEN, or COMMITTED when an
# earlier attempt got as far as a confirmed trade (its transaction then finds it done).
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


async def on_accept_quote(deps: Dependencies, cmd: AcceptQuote) -> None:
    outcome = await _accept(deps, cmd)
    if outcome is not None:
        ACCEPTS.labels(outcome).inc()


async def _accept(deps: Dependencies, cmd: AcceptQuote) -> str | None:
    """Returns how the accept was answered (`accepted` or the refusal's code), or
    None if it had been answered before."""
    if await already_processed(deps, cmd.command_id):
        return None
    now = deps.clock.now()
    order, quote = await deps.reads.order_and_quote(cmd.rfq_id, cmd.quote_id)
    if order is None or order.requester != cmd.trader:
        return await refuse(deps, cmd, cmd.rfq_id, *unknown_command_target(cmd.rfq_id))
    try:
        order.check(OrderEvent.ACCEPT_QUOTE, now)
    except IllegalTransition as exc:
        return await _refuse_undoing(deps, cmd, quote, "wrong_state", str(exc))
    if quote is None:
        return await refuse(deps, cmd, order.rfq_id, "unknown_quote", f"no quote {cmd.quote_id}")
    try:
        fill = order.fill_for(quote, cmd.side, now)
    except AcceptRefused as exc:
        return await _refuse_undoing(deps, cmd, quote, exc.code, exc.message)

    taken, _ = await deps.quotes.take(
        order.rfq_id, quote.quote_id, taker=cmd.command_id, maker=quote.maker
    )
    if taken is not TakeOutcome.TAKEN:
        return await refuse(deps, cmd, order.rfq_id, *TAKE_REFUSALS[taken])
    failpoints.hit("order_core.accept.after_take")

    reservation_id = derived_id("reservation", cmd.command_id)
    currency = INSTRUMENTS[order.instrument].quote
    amount = order.quantity * fill.price
    answer = await deps.risk.freeze(
        reservation_id,
        order.rfq_id,
        [
            CreditLeg(order.requester, quote.maker, amount, currency),
            CreditLeg(quote.maker, order.requester, amount, currency),
        ],
        deadline=now + deps.reservation_ttl,
    )
    if not answer.ok:
        return await _risk_rejected(deps, cmd, quote, answer.code, answer.message)
    if answer.status not in HELD:
        # A redelivered accept whose reservation was released meanwhile (its
        # deadline passed, or the reconciler found no order holding it).
        why = f"the credit reservation of this accept is {answer.status.lower()}"
        return await _refuse_undoing(deps, cmd, quote, "reservation_expired", why)
    failpoints.hit("order_core.accept.after_freeze")

    try:
        done = await transaction(
            deps, lambda tx: _begin_confirmation(tx, deps, cmd, quote, fill), once=cmd
        )
    except _LostRace as lost:
        # Another accept or a cancel got there first: our credit and quote go back.
        return await _refuse_undoing(deps, cmd, quote, "wrong_state", str(lost))
    if done is DUPLICATE:
        return None
    log.info("quote accepted; last look requested", rfq_id=order.rfq_id, maker=quote.maker)
    return "accepted"


async def _begin_confirmation(
    tx: Tx, deps: Dependencies, cmd: AcceptQuote, quote: Quote, fill: Fill
) -> None:
    now = tx.now()
    order = await tx.orders.get(cmd.rfq_id)
    assert order is not None
    deadline = now + deps.last_look_window
    try:
        order.begin_confirmation(
            quote=quote,
            fill=fill,
            reservation_id=derived_id("reservation", cmd.command_id),
            lastlook_deadline=deadline,
            now=now,
        )
    except IllegalTransition as exc:
        raise _LostRace(str(exc)) from None
    await tx.orders.save(order)
    tx.emit_result(order.rfq_id, order, accepted=True)
    tx.emit_state(order, OrderEvent.ACCEPT_QUOTE)
    tx.emit(
        topics.LASTLOOK_REQUESTS, order.rfq_id, messages.last_look_request(order, quote, deadline)
    )


class _LostRace(Exception):
    """The order left QUOTED between the read and the transaction."""


async def _refuse_undoing(
    deps: Dependencies, cmd: AcceptQuote, quote: Quote | None, code: str, reason: str
) -> str | None:
    """Refuses the accept, then undoes what an earlier attempt of this very command
    may have done before a crash (taken the quote, frozen credit). Undone only once
    the refusal is on record: from then on no attempt of this command can ever
    commit an order pending on that credit, whereas one that checked before an
    earlier attempt committed would otherwise release the credit of a live order."""
    code_answered = await refuse(deps, cmd, cmd.rfq_id, code, reason)
    if code_answered is not None:
        await _undo_attempt(deps, cmd, quote, "accept could not complete")
    return code_answered


async def _undo_attempt(
    deps: Dependencies, cmd: AcceptQuote, quote: Quote | None, why: str
) -> None:
    """Gives back the quote the accept took, and then the credit it may have frozen
    after taking it; nothing if it took nothing."""
    if quote is None:
        return
    given_back = await deps.quotes.give_back(
        cmd.rfq_id, quote.quote_id, taker=cmd.command_id, maker=quote.maker
    )
    if given_back is not None:
        await deps.risk.release(derived_id("reservation", cmd.command_id), why)


async def _risk_rejected(
    deps: Dependencies, cmd: AcceptQuote, quote: Quote, code: str, reason: str
) -> str | None:
    answered = await transaction(
        deps, lambda tx: _record_risk_refusal(tx, cmd.rfq_id, code, reason), once=cmd
    )
    if answered is DUPLICATE:
        return None
    log.info("accept refused by risk", rfq_id=cmd.rfq_id, reason=reason)
    # Refused by risk (for want of credit, most often): the quote stays the trader's
    # to accept once the credit is there, and the maker's to replace or withdraw.
    await deps.quotes.give_back(cmd.rfq_id, quote.quote_id, taker=cmd.event_id, maker=quote.maker)
    return code


async def _record_risk_refusal(tx: Tx, rfq_id: str, code: str, reason: str) -> None:
    order = await tx.orders.get(rfq_id)
    assert order is not None
    now = tx.now()
    if order.allows(OrderEvent.RISK_REJECTED, now):
        order.apply(OrderEvent.RISK_REJECTED, now)
        await tx.orders.save(order)
    tx.emit_result(rfq_id, order, accepted=False, code=code, reason=reason)
