"""The SQL of settlement instructions: the `trades` rows, PENDING until settled or
failed.

Instructions to attempt are claimed with FOR UPDATE SKIP LOCKED, so several
settlement processes (and the end-of-day batch) share the work without trying
one instruction twice at once; the transaction that inserts an instruction holds
its row until it has made the first attempt.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from otc.instruments import INSTRUMENTS
from settlement.adapters.tables import trades
from settlement.domain.instructions import Instruction
from settlement.domain.ledger import Trade, TradeStatus


class InstructionRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(
        self, instruction: Instruction, *, booked_at: datetime, next_attempt_at: datetime | None
    ) -> bool:
        """Records a PENDING instruction; False when its trade id is booked already.

        The primary key decides, not a prior lookup, so two deliveries racing with
        different message ids still book the trade once.
        """
        trade = instruction.trade
        result = await self._conn.execute(
            insert(trades)
            .values(
                trade_id=trade.trade_id,
                rfq_id=trade.rfq_id,
                instrument=trade.instrument.symbol,
                buyer=trade.buyer,
                seller=trade.seller,
                quantity=trade.quantity,
                price=trade.price,
                notional=trade.notional,
                status=TradeStatus.PENDING.value,
                reason="",
                booked_at=booked_at,
                confirmed_at=instruction.confirmed_at,
                value_date=instruction.value_date,
                attempts=instruction.attempts,
                next_attempt_at=next_attempt_at,
                correlation_id=instruction.correlation_id,
                causation_id=instruction.causation_id,
            )
            .on_conflict_do_nothing(index_elements=[trades.c.trade_id])
            .returning(trades.c.trade_id)
        )
        return result.first() is not None

    async def claim_due(self, now: datetime, limit: int) -> list[Instruction]:
        """Locks instructions whose next attempt is due, oldest due first."""
        t = trades.c
        return await self._claim(
            select(trades)
            .where(t.status == TradeStatus.PENDING.value, t.next_attempt_at <= now)
            .order_by(t.next_attempt_at),
            limit,
        )

    async def claim_value_dated(self, day: date, limit: int) -> list[Instruction]:
        """Locks instructions waiting for a value date on or before `day`."""
        t = trades.c
        return await self._claim(
            select(trades)
            .where(
                t.status == TradeStatus.PENDING.value,
                t.next_attempt_at.is_(None),
                t.value_date <= day,
            )
            .order_by(t.value_date, t.confirmed_at),
            limit,
        )

    async def _claim(self, query: Any, limit: int) -> list[Instruction]:
        rows = await self._conn.execute(query.limit(limit).with_for_update(skip_locked=True))
        return [_instruction(row) for row in rows]

    async def retry_later(self, trade_id: str, attempts: int, reason: str, at: datetime) -> None:
        await self._conn.execute(
            update(trades)
            .where(trades.c.trade_id == trade_id)
            .values(attempts=attempts, reason=reason, next_attempt_at=at)
        )

    async def finish(
        self, trade_id: str, status: TradeStatus, reason: str, attempts: int, at: datetime
    ) -> None:
        await self._conn.execute(
            update(trades)
            .where(trades.c.trade_id == trade_id)
            .values(
                status=status.value,
                reason=reason,
                attempts=attempts,
                next_attempt_at=None,
                settled_at=at,
            )
        )


def _instruction(row: Row[Any]) -> Instruction:
    return Instruction(
        trade=Trade(
            trade_id=row.trade_id,
            rfq_id=row.rfq_id,
            instrument=INSTRUMENTS[row.instrument],
            buyer=row.buyer,
            seller=row.seller,
            quantity=row.quantity,
            price=row.price,
            notional=row.notional,
        ),
        confirmed_at=row.confirmed_at,
        value_date=row.value_date,
        attempts=row.attempts,
        correlation_id=row.correlation_id,
        causation_id=row.causation_id,
    )
