"""One database transaction of the edge, with its repository of RFQ rows and the
read-only queries its reads run (in a unit of work they never commit)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from otc.clock import Clock
from otc.unit_of_work import UnitOfWork
from rfq_service.adapters.repository import RfqQueries, RfqRepository
from rfq_service.adapters.tables import OUTBOX_TABLES

PRODUCER = "rfq-service"


class RfqUnitOfWork(UnitOfWork):
    rfqs: RfqRepository
    queries: RfqQueries

    def __init__(self, engine: AsyncEngine, *, clock: Clock) -> None:
        super().__init__(engine, OUTBOX_TABLES, producer=PRODUCER, clock=clock)

    def bind(self, conn: AsyncConnection) -> None:
        self.rfqs = RfqRepository(conn)
        self.queries = RfqQueries(conn)
