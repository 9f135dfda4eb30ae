"""What the end-of-day batch asks of the credit service: expire the reservations
left frozen past their deadline, and show the credit in use for reconciliation.

Expiry is the sweeper's own move, for the deadlines that passed before the day's
close: a reservation whose deadline has not passed is never touched, so running
it while deals are in flight, or twice, is harmless.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from otc.logging import get_logger
from risk_limits.domain.credit import CreditLine
from risk_limits.domain.reservation import Reservation

from .settling import expire_overdue
from .unit_of_work import Dependencies

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class CommittedSnapshot:
    reservations: list[tuple[Reservation, datetime]]  # with when each was committed
    lines: list[CreditLine]


async def expire_frozen(before: datetime, deps: Dependencies) -> int:
    """Expires every FROZEN reservation whose deadline is at or before `before`
    (never later than now); returns how many."""
    expired = 0
    while batch := await expire_overdue(deps, before):
        expired += batch
    if expired:
        log.info("end of day expired frozen reservations", count=expired)
    return expired


async def committed(deps: Dependencies) -> CommittedSnapshot:
    # One snapshot for both reads, so reservations and lines agree with each other.
    async with deps.uow(snapshot=True) as uow:
        queries = uow.committed_credit
        return CommittedSnapshot(await queries.reservations(), await queries.lines_in_use())
