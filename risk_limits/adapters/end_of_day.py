"""Read-only SQL for the end-of-day reconciliation: the reservations holding used
credit and the lines using it, in one snapshot (one read-only transaction)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncConnection

from risk_limits.domain.credit import GROSS, CreditLine, LineKey
from risk_limits.domain.reservation import Reservation, Status

from .reservation_repository import _reservation
from .tables import bilateral_lines, credit_lines, reservations


class CommittedCredit:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def reservations(self) -> list[tuple[Reservation, datetime]]:
        """Every COMMITTED reservation, with when it was committed."""
        rows = await self._conn.execute(
            select(reservations)
            .where(reservations.c.status == Status.COMMITTED.value)
            .order_by(reservations.c.rfq_id)
        )
        return [(_reservation(row), row.updated_at) for row in rows]

    async def lines_in_use(self) -> list[CreditLine]:
        gross, bilateral = credit_lines.c, bilateral_lines.c
        columns = ("currency", "credit_limit", "used", "frozen")
        rows = await self._conn.execute(
            union_all(
                select(
                    gross.party,
                    literal(GROSS).label("counterparty"),
                    *(gross[c] for c in columns),
                ).where(gross.used != 0),
                select(
                    bilateral.party, bilateral.counterparty, *(bilateral[c] for c in columns)
                ).where(bilateral.used != 0),
            ).order_by("party", "counterparty")
        )
        return [
            CreditLine(
                key=LineKey(r.party, r.counterparty),
                currency=r.currency,
                limit=r.credit_limit,
                used=r.used,
                frozen=r.frozen,
            )
            for r in rows
        ]
