"""Reading reservations back: what a caller that lost track of its own call (a
timeout, a crash between the call and its transaction) asks to learn what really
happened, and the FROZEN ones the reconciler holds up against live orders."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from risk_limits.domain import commands
from risk_limits.domain.credit import require_uuid
from risk_limits.domain.errors import ReservationNotFound
from risk_limits.domain.reservation import Reservation

from .unit_of_work import Dependencies

LIST_LIMIT_MAX = 1000


@dataclass(frozen=True, slots=True)
class FrozenReservation:
    reservation: Reservation
    created_at: datetime


async def get_reservation(query: commands.GetReservation, deps: Dependencies) -> Reservation:
    reservation_id = require_uuid(query.reservation_id, "reservation_id")
    async with deps.uow() as uow:
        stored = await uow.reservations.get(reservation_id)
    if stored is None:
        raise ReservationNotFound(f"reservation {reservation_id} not found")
    return stored


async def list_frozen(query: commands.ListFrozen, deps: Dependencies) -> list[FrozenReservation]:
    limit = min(max(query.limit, 1), LIST_LIMIT_MAX)
    async with deps.uow() as uow:
        rows = await uow.reservations.frozen_before(query.created_before, query.after, limit)
    return [FrozenReservation(r, created_at) for r, created_at in rows]
