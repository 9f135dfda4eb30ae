"""The second phase: Commit, Release and the sweeper's expiry of overdue reservations.

Each locks the reservation row before touching credit lines (and touches lines in
line order), so it waits for a concurrent Freeze, Commit or Release of the same id
and then sees its outcome: a reservation leaves FROZEN exactly once. The credit
moved is what the reservation recorded at its Freeze, never a new conversion.
"""

from __future__ import annotations

from datetime import datetime

from prometheus_client import Counter

from otc.errors import Conflict, ValidationFailed
from otc.logging import get_logger
from risk_limits.domain import commands
from risk_limits.domain.credit import require_uuid, sum_holds
from risk_limits.domain.errors import ReservationExpired, ReservationNotFound
from risk_limits.domain.reservation import (
    MOVEMENT,
    TARGET,
    TOMBSTONE_HASH,
    Action,
    Decision,
    Reservation,
    Status,
    decide,
    past_deadline,
)
from risk_limits.metrics import COMMITS, RELEASES, RESERVATIONS_EXPIRED

from .unit_of_work import CreditUnitOfWork, Dependencies

log = get_logger(__name__)

SWEEP_BATCH = 100
EXPIRY_REASON = "deadline passed"


async def commit(cmd: commands.Commit, deps: Dependencies) -> Status:
    reservation_id = valid_id(cmd.reservation_id, COMMITS)
    now = deps.clock.now()
    async with deps.uow() as uow:
        stored = await uow.reservations.get(reservation_id, for_update=True)
        if stored is None:
            COMMITS.labels("not_found").inc()
            raise ReservationNotFound(f"reservation {reservation_id} not found")
        if past_deadline(stored, now):
            # Decided under the row lock the sweeper also takes: a reservation past
            # its deadline is released, never committed, whoever gets to it first.
            await apply(uow, stored, Action.EXPIRE, EXPIRY_REASON, now, COMMITS)
            RESERVATIONS_EXPIRED.inc()
            raise ReservationExpired(
                f"reservation {reservation_id} passed its deadline "
                f"{stored.deadline.isoformat()} uncommitted; its credit was released"
            )
        return await apply(uow, stored, Action.COMMIT, "", now, COMMITS)


async def release(cmd: commands.Release, deps: Dependencies) -> Status:
    reservation_id = valid_id(cmd.reservation_id, RELEASES)
    now = deps.clock.now()
    tombstone = Reservation(
        reservation_id=reservation_id,
        rfq_id="",
        status=Status.RELEASED,
        legs=(),
        holds=(),
        request_hash=TOMBSTONE_HASH,
        reason=cmd.reason,
        deadline=now,
    )
    async with deps.uow() as uow:
        if await uow.reservations.add(tombstone, now):
            await uow.commit()
            RELEASES.labels("tombstone").inc()
            log.info("released before frozen", reservation_id=reservation_id)
            return Status.RELEASED
        stored = await uow.reservations.get(reservation_id, for_update=True)
        assert stored is not None, "reservations are never deleted"
        return await apply(uow, stored, Action.RELEASE, cmd.reason, now, RELEASES)


async def expire_overdue(deps: Dependencies, before: datetime | None = None) -> int:
    """Expires one batch of FROZEN reservations whose deadline has passed (and is at
    or before `before`, when given); returns how many, so that the caller knows
    whether to take another batch at once."""
    now = deps.clock.now()
    cutoff = now if before is None else min(before, now)
    async with deps.uow() as uow:
        overdue = await uow.reservations.claim_overdue(cutoff, SWEEP_BATCH)
        if not overdue:
            return 0
        for reservation in overdue:
            decide(reservation.reservation_id, reservation.status, Action.EXPIRE)
        # One pass over all the batch's lines in line order, not one per reservation:
        # two sweepers holding different reservations must still lock lines in order.
        for hold in sum_holds(hold for r in overdue for hold in r.holds):
            await uow.credit_lines.move(hold, MOVEMENT[Action.EXPIRE], now)
        await uow.reservations.set_status(
            [r.reservation_id for r in overdue], TARGET[Action.EXPIRE], EXPIRY_REASON, now
        )
        await uow.commit()
    RESERVATIONS_EXPIRED.inc(len(overdue))
    for reservation in overdue:
        log.info(
            "reservation expired",
            rfq_id=reservation.rfq_id,
            reservation_id=reservation.reservation_id,
            deadline=reservation.deadline.isoformat(),
        )
    return len(overdue)


async def apply(
    uow: CreditUnitOfWork,
    stored: Reservation,
    action: Action,
    reason: str,
    now: datetime,
    counter: Counter,
) -> Status:
    """Applies `action` to the locked reservation `stored` and commits; answers the
    current status when the action was already applied."""
    bound = log.bind(rfq_id=stored.rfq_id, reservation_id=stored.reservation_id)
    target = TARGET[action]
    try:
        if decide(stored.reservation_id, stored.status, action) is Decision.ALREADY_DONE:
            # Committed all the same: the caller may have written more (an inbox row).
            await uow.commit()
            counter.labels("replayed").inc()
            return stored.status
        for hold in sum_holds(stored.holds):
            await uow.credit_lines.move(hold, MOVEMENT[action], now)
        await uow.reservations.set_status([stored.reservation_id], target, reason, now)
    except Conflict as exc:
        counter.labels("refused").inc()
        bound.info("reservation transition refused", reason=exc.message)
        raise
    await uow.commit()
    counter.labels(target.value.lower()).inc()
    bound.info("reservation moved", status=target.value)
    return target


def valid_id(reservation_id: str, counter: Counter) -> str:
    try:
        return require_uuid(reservation_id, "reservation_id")
    except ValidationFailed:
        counter.labels("invalid").inc()
        raise
