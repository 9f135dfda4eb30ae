"""SQL of reservations and of the inbox of consumed events, over one connection of
a unit of work.

A reservation is created with INSERT ... ON CONFLICT DO NOTHING, so that whoever
inserts an id owns it; the others read the stored row under FOR UPDATE and wait
for its owner. The sweeper claims overdue rows with FOR UPDATE SKIP LOCKED so that
replicas share the work, and an event is recorded as consumed in the transaction
of its effect, its unique key telling a redelivery from news.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Row, case, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from otc.money import fmt
from risk_limits.domain.credit import Hold, Leg, LineKey
from risk_limits.domain.errors import RfqAlreadyCommitted
from risk_limits.domain.reservation import Reservation, Status

from .tables import processed_events, reservations

ONE_COMMITTED_PER_RFQ = "reservations_one_committed_per_rfq"
# The statuses a settlement event about an RFQ can find its reservation in.
_SETTLEABLE = (Status.COMMITTED, Status.SETTLED, Status.SETTLEMENT_FAILED)


class ReservationRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, reservation: Reservation, now: datetime) -> bool:
        """Records a new reservation; False when its id is already taken."""
        result = await self._conn.execute(
            insert(reservations)
            .values(
                reservation_id=reservation.reservation_id,
                rfq_id=reservation.rfq_id,
                status=reservation.status.value,
                legs=[_leg_json(leg) for leg in reservation.legs],
                holds=[_hold_json(hold) for hold in reservation.holds],
                request_hash=reservation.request_hash,
                reason=reservation.reason,
                deadline=reservation.deadline,
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=[reservations.c.reservation_id])
            .returning(reservations.c.reservation_id)
        )
        return result.first() is not None

    async def get(self, reservation_id: str, *, for_update: bool = False) -> Reservation | None:
        stmt = select(reservations).where(reservations.c.reservation_id == reservation_id)
        if for_update:
            stmt = stmt.with_for_update()
        row = (await self._conn.execute(stmt)).first()
        return None if row is None else _reservation(row)

    async def of_settled_trade(self, rfq_id: str) -> Reservation | None:
        """Locks the reservation behind the trade of `rfq_id`: the committed one, or
        once settlement has been recorded, the one it was recorded on."""
        r = reservations.c
        stmt = (
            select(reservations)
            .where(r.rfq_id == rfq_id, r.status.in_([s.value for s in _SETTLEABLE]))
            .order_by(case((r.status == Status.COMMITTED.value, 0), else_=1), r.updated_at.desc())
            .limit(1)
            .with_for_update()
        )
        row = (await self._conn.execute(stmt)).first()
        return None if row is None else _reservation(row)

    async def claim_overdue(self, now: datetime, limit: int) -> list[Reservation]:
        """Locks FROZEN reservations past their deadline, skipping those another
        transaction (a Commit, a Release, another replica's sweeper) holds."""
        stmt = (
            select(reservations)
            .where(reservations.c.status == Status.FROZEN.value, reservations.c.deadline <= now)
            .order_by(reservations.c.deadline)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [_reservation(row) for row in await self._conn.execute(stmt)]

    async def frozen_before(
        self, created_before: datetime, after: str, limit: int
    ) -> list[tuple[Reservation, datetime]]:
        """FROZEN reservations created before `created_before`, by id after `after`."""
        r = reservations.c
        stmt = (
            select(reservations)
            .where(
                r.status == Status.FROZEN.value,
                r.created_at < created_before,
                r.reservation_id > after,
            )
            .order_by(r.reservation_id)
            .limit(limit)
        )
        return [(_reservation(row), row.created_at) for row in await self._conn.execute(stmt)]

    async def set_status(
        self, reservation_ids: Sequence[str], status: Status, reason: str, now: datetime
    ) -> None:
        try:
            await self._conn.execute(
                update(reservations)
                .where(reservations.c.reservation_id.in_(reservation_ids))
                .values(status=status.value, reason=reason, updated_at=now)
            )
        except IntegrityError as exc:
            if ONE_COMMITTED_PER_RFQ not in str(exc.orig):
                raise
            raise RfqAlreadyCommitted(
                f"the RFQ of reservation {', '.join(reservation_ids)} already has a "
                "committed reservation; one RFQ trades once"
            ) from None


class InboxRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def mark_processed(self, consumer: str, event_id: str, now: datetime) -> bool:
        """True the first time `consumer` sees `event_id`; False for a redelivery."""
        result = await self._conn.execute(
            insert(processed_events)
            .values(consumer=consumer, event_id=event_id, processed_at=now)
            .on_conflict_do_nothing()
            .returning(processed_events.c.event_id)
        )
        return result.first() is not None


def _leg_json(leg: Leg) -> dict[str, str]:
    return {
        "party": leg.party,
        "counterparty": leg.counterparty,
        "amount": fmt(leg.amount),
        "currency": leg.currency,
    }


def _hold_json(hold: Hold) -> dict[str, str]:
    return {
        "party": hold.line.party,
        "counterparty": hold.line.counterparty,
        "amount": fmt(hold.amount),
        "currency": hold.currency,
    }


def _reservation(row: Row[Any]) -> Reservation:
    return Reservation(
        reservation_id=row.reservation_id,
        rfq_id=row.rfq_id,
        status=Status(row.status),
        legs=tuple(
            Leg(leg["party"], leg["counterparty"], Decimal(leg["amount"]), leg["currency"])
            for leg in row.legs
        ),
        holds=tuple(
            Hold(LineKey(h["party"], h["counterparty"]), Decimal(h["amount"]), h["currency"])
            for h in row.holds
        ),
        request_hash=row.request_hash,
        reason=row.reason,
        deadline=row.deadline,
    )
