"""Freeze: every line of every leg or nothing, in one transaction, idempotent on the
reservation id.

The holds are worked out first (each line's currency, the reference rates when a
conversion is needed). Then the reservation row is inserted (ON CONFLICT DO
NOTHING): whoever inserts it owns the freeze, and a known id is answered from the
stored row instead. Then each line is frozen by a conditional UPDATE, in line order.

A refusal for want of credit rolls everything back and records the reservation as
REJECTED in a second transaction, so that a retry of the same request gets the same
refusal even once credit has come back. A refusal of the request itself (malformed,
unknown party, missing rate) records nothing: it does not depend on other
reservations, and the id stays free for a corrected request.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from otc.errors import Conflict, OtcError
from otc.logging import correlation, get_logger
from risk_limits.domain import commands
from risk_limits.domain.credit import (
    currencies_to_convert,
    holds_for,
    lines_of,
    parse_legs,
    refusal,
    request_hash,
    require_id,
    require_uuid,
)
from risk_limits.domain.errors import CreditRefused
from risk_limits.domain.reservation import Reservation, Status, deadline_for, replay_freeze
from risk_limits.metrics import FREEZES

from .unit_of_work import Dependencies

log = get_logger(__name__)


async def freeze(cmd: commands.Freeze, deps: Dependencies) -> Status:
    now = deps.clock.now()
    try:
        reservation_id = require_uuid(cmd.reservation_id, "reservation_id")
        rfq_id = require_id(cmd.rfq_id, "rfq_id")
        legs = parse_legs(cmd.legs)
    except OtcError:
        FREEZES.labels("invalid").inc()
        raise
    reservation = Reservation(
        reservation_id=reservation_id,
        rfq_id=rfq_id,
        status=Status.FROZEN,
        legs=legs,
        holds=(),
        request_hash=request_hash(rfq_id, legs),
        reason="",
        deadline=deadline_for(cmd.deadline, now, deps.reservation_ttl),
    )
    with correlation(rfq_id, rfq_id=rfq_id, reservation_id=reservation_id):
        try:
            outcome = await _freeze_new(reservation, deps, now)
        except CreditRefused as refused:
            outcome = refused
        except OtcError as exc:
            FREEZES.labels("invalid").inc()
            log.info("freeze refused", reason=exc.message)
            raise
        if outcome is None:
            FREEZES.labels("frozen").inc()
            log.info("credit frozen", deadline=reservation.deadline.isoformat())
            return Status.FROZEN
        if isinstance(outcome, CreditRefused):
            outcome, recorded = await _record_rejection(reservation, outcome, deps, now)
            if recorded:
                FREEZES.labels("rejected").inc()
                log.info("freeze refused", reason=outcome.reason)
                raise CreditRefused(outcome.reason)
        return _replay(outcome, reservation.request_hash)


async def _freeze_new(
    reservation: Reservation, deps: Dependencies, now: datetime
) -> Reservation | CreditRefused | None:
    """None when frozen now; the stored reservation when the id was already known;
    the refusal when a credit line said no (and nothing was kept)."""
    async with deps.uow() as uow:
        currencies = await uow.credit_lines.currencies(lines_of(reservation.legs))
        needed = currencies_to_convert(reservation.legs, currencies)
        rates = await uow.rates.get_many(needed) if needed else {}
        holds = holds_for(reservation.legs, currencies, rates)
        if not await uow.reservations.add(replace(reservation, holds=holds), now):
            stored = await uow.reservations.get(reservation.reservation_id)
            assert stored is not None, "reservations are never deleted"
            return stored
        for hold in holds:
            if not await uow.credit_lines.try_freeze(hold, now):
                why = refusal(hold, await uow.credit_lines.get(hold.line))
                if isinstance(why, CreditRefused):
                    return why
                raise why
        await uow.commit()
        return None


async def _record_rejection(
    reservation: Reservation, refused: CreditRefused, deps: Dependencies, now: datetime
) -> tuple[Reservation, bool]:
    """Stores the refusal under the reservation id (True), unless a concurrent call
    with the same id (a retry, a Release) got there first: its record is the answer."""
    rejected = replace(reservation, status=Status.REJECTED, reason=refused.message)
    async with deps.uow() as uow:
        if await uow.reservations.add(rejected, now):
            await uow.commit()
            return rejected, True
        stored = await uow.reservations.get(reservation.reservation_id)
        assert stored is not None, "reservations are never deleted"
        return stored, False


def _replay(stored: Reservation, digest: str) -> Status:
    try:
        status = replay_freeze(stored, digest)
    except CreditRefused:
        FREEZES.labels("replayed").inc()
        raise
    except Conflict as exc:
        FREEZES.labels("rejected").inc()
        log.info("freeze refused", reason=exc.message)
        raise
    FREEZES.labels("replayed").inc()
    log.info("freeze replayed", status=status.value)
    return status
