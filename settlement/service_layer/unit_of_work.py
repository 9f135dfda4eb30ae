"""One database transaction of settlement, with its repositories: the ledger, the
settlement instructions and the read-only queries of the end-of-day books."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from otc.clock import Clock
from otc.unit_of_work import UnitOfWork
from settlement.adapters.books import BooksQueries
from settlement.adapters.instructions import InstructionRepository
from settlement.adapters.repository import LedgerRepository
from settlement.adapters.tables import OUTBOX_TABLES

PRODUCER = "settlement"


class SettlementUnitOfWork(UnitOfWork):
    ledger: LedgerRepository
    instructions: InstructionRepository
    books: BooksQueries

    def __init__(self, engine: AsyncEngine, *, clock: Clock, snapshot: bool = False) -> None:
        super().__init__(engine, OUTBOX_TABLES, producer=PRODUCER, clock=clock, snapshot=snapshot)

    def bind(self, conn: AsyncConnection) -> None:
        self.ledger = LedgerRepository(conn)
        self.instructions = InstructionRepository(conn)
        self.books = BooksQueries(conn)
