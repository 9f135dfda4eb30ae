"""One database transaction of the credit service, with its repositories.

It rolls back unless `commit()` is called, so a handler that raises halfway through
(a refused line after others were frozen) leaves nothing behind.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncTransaction

from risk_limits.adapters.line_repository import CreditLineRepository, ReferenceRateRepository
from risk_limits.adapters.reservation_repository import InboxRepository, ReservationRepository


class UnitOfWork:
    credit_lines: CreditLineRepository
    rates: ReferenceRateRepository
    reservations: ReservationRepository
    inbox: InboxRepository

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._conn: AsyncConnection | None = None
        self._tx: AsyncTransaction | None = None

    async def __aenter__(self) -> Self:
        self._conn = await self._engine.connect()
        self._tx = await self._conn.begin()
        self.credit_lines = CreditLineRepository(self._conn)
        self.rates = ReferenceRateRepository(self._conn)
        self.reservations = ReservationRepository(self._conn)
        self.inbox = InboxRepository(self._conn)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._tx is not None and self._tx.is_active:
                await self._tx.rollback()
        finally:
            if self._conn is not None:
                await self._conn.close()
            self._conn = self._tx = None

    async def commit(self) -> None:
        if self._tx is None:
            raise RuntimeError("unit of work used outside `async with`")
        await self._tx.commit()
