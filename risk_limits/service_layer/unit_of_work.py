"""One database transaction of the credit service, with its repositories, and the
dependencies every handler is given: the database, the clock, the settings.

The unit of work rolls back unless `commit()` is called, so a handler that raises
halfway through (a refused line after others were frozen) leaves nothing behind.
The credit service publishes nothing, so its unit of work has no outbox; its inbox
is a repository.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from otc.clock import Clock
from otc.unit_of_work import UnitOfWork
from risk_limits.adapters.end_of_day import CommittedCredit
from risk_limits.adapters.line_repository import CreditLineRepository, ReferenceRateRepository
from risk_limits.adapters.reservation_repository import InboxRepository, ReservationRepository

PRODUCER = "risk-limits"


class CreditUnitOfWork(UnitOfWork):
    credit_lines: CreditLineRepository
    rates: ReferenceRateRepository
    reservations: ReservationRepository
    inbox: InboxRepository

    def bind(self, conn: AsyncConnection) -> None:
        self.credit_lines = CreditLineRepository(conn)
        self.rates = ReferenceRateRepository(conn)
        self.reservations = ReservationRepository(conn)
        self.inbox = InboxRepository(conn)

    @property
    def committed_credit(self) -> CommittedCredit:
        # Only the end of day reads it; built on demand, not on every freeze's bind.
        return CommittedCredit(self.conn)


@dataclass(frozen=True, slots=True)
class Dependencies:
    engine: AsyncEngine
    clock: Clock
    reservation_ttl: timedelta

    def uow(self, *, snapshot: bool = False) -> CreditUnitOfWork:
        return CreditUnitOfWork(self.engine, producer=PRODUCER, clock=self.clock, snapshot=snapshot)
