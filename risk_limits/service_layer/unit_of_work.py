"""One database transaction of the credit service, with its repositories.

It rolls back unless `commit()` is called, so a handler that raises halfway through
(a refused line after others were frozen) leaves nothing behind. The credit service
publishes nothing, so its unit of work has no outbox; its inbox is a repository.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

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
    committed_credit: CommittedCredit

    def bind(self, conn: AsyncConnection) -> None:
        self.credit_lines = CreditLineRepository(conn)
        self.rates = ReferenceRateRepository(conn)
        self.reservations = ReservationRepository(conn)
        self.inbox = InboxRepository(conn)
        self.committed_credit = CommittedCredit(conn)
