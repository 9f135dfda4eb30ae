"""Every SQL statement of the credit service, over one connection of a unit of work.

Correctness under concurrency lives in the statements themselves: a freeze is a
conditional UPDATE that matches only when the credit is there (Postgres re-checks
the condition on the newest row version after waiting for a concurrent writer), a
reservation is created with INSERT ... ON CONFLICT DO NOTHING, and the sweeper
claims overdue rows with FOR UPDATE SKIP LOCKED so that replicas share the work.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Row, and_, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from otc.money import fmt
from risk_limits.domain.credit import CreditLine, Leg, PartyAmount
from risk_limits.domain.reservation import Reservation, Status

from .tables import credit_lines, reservations


class CreditLineRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def get(self, party: str) -> CreditLine | None:
        row = (
            await self._conn.execute(select(credit_lines).where(credit_lines.c.party == party))
        ).first()
        return None if row is None else _credit_line(row)

    async def upsert(
        self, party: str, currency: str, limit: Decimal, now: datetime
    ) -> CreditLine | None:
        """Creates or resizes a line. None when the line exists in another currency
        and still carries used or frozen credit, which a new currency would misprice."""
        stmt = insert(credit_lines).values(
            party=party, currency=currency, credit_limit=limit, updated_at=now
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[credit_lines.c.party],
            set_={
                "currency": stmt.excluded.currency,
                "credit_limit": stmt.excluded.credit_limit,
                "updated_at": stmt.excluded.updated_at,
            },
            where=or_(
                credit_lines.c.currency == stmt.excluded.currency,
                and_(credit_lines.c.used == 0, credit_lines.c.frozen == 0),
            ),
        )
        row = (await self._conn.execute(stmt.returning(*credit_lines.c))).first()
        return None if row is None else _credit_line(row)

    async def try_freeze(self, asked: PartyAmount, now: datetime) -> bool:
        line = credit_lines.c
        result = await self._conn.execute(
            update(credit_lines)
            .where(
                line.party == asked.party,
                line.currency == asked.currency,
                line.credit_limit - line.used - line.frozen >= asked.amount,
            )
            .values(frozen=line.frozen + asked.amount, updated_at=now)
            .returning(line.party)
        )
        return result.first() is not None

    async def unfreeze(self, amount: PartyAmount, *, into_used: bool, now: datetime) -> None:
        """Takes `amount` out of frozen: into used on commit, back to available otherwise."""
        line = credit_lines.c
        values: dict[str, Any] = {"frozen": line.frozen - amount.amount, "updated_at": now}
        if into_used:
            values["used"] = line.used + amount.amount
        result = await self._conn.execute(
            update(credit_lines)
            .where(line.party == amount.party)
            .values(values)
            .returning(line.party)
        )
        if result.first() is None:
            raise RuntimeError(f"credit line of {amount.party} vanished under a reservation")


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

    async def set_status(
        self, reservation_ids: Sequence[str], status: Status, reason: str, now: datetime
    ) -> None:
        await self._conn.execute(
            update(reservations)
            .where(reservations.c.reservation_id.in_(reservation_ids))
            .values(status=status.value, reason=reason, updated_at=now)
        )


def _credit_line(row: Row[Any]) -> CreditLine:
    return CreditLine(
        party=row.party,
        currency=row.currency,
        limit=row.credit_limit,
        used=row.used,
        frozen=row.frozen,
    )


def _leg_json(leg: Leg) -> dict[str, str]:
    return {
        "party": leg.party,
        "counterparty": leg.counterparty,
        "amount": fmt(leg.amount),
        "currency": leg.currency,
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
        request_hash=row.request_hash,
        reason=row.reason,
        deadline=row.deadline,
    )
