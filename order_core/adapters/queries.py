"""Reads outside any unit of work: what a handler looks at before it calls out to
Redis or risk_limits, and what the sweepers page through. Each read takes its own
connection and writes nothing; a decision made on it is re-checked by the
versioned update in the transaction that follows."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from order_core.adapters.repository import OrderRepository
from order_core.adapters.tables import OUTBOX_TABLES
from order_core.domain.order import Order, Quote


class OrderQueries:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def processed(self, consumer: str, event_id: str) -> bool:
        """Whether `consumer` has recorded `event_id` as done."""
        table = OUTBOX_TABLES.processed_events
        async with self._engine.connect() as conn:
            row = await conn.execute(
                select(table.c.event_id).where(
                    table.c.consumer == consumer, table.c.event_id == event_id
                )
            )
            return row.first() is not None

    async def order(self, rfq_id: str) -> Order | None:
        async with self._engine.connect() as conn:
            return await OrderRepository(conn).get(rfq_id)

    async def order_and_quote(
        self, rfq_id: str, quote_id: str
    ) -> tuple[Order | None, Quote | None]:
        """The order and one of its quotes (None without the order), on one connection."""
        async with self._engine.connect() as conn:
            repo = OrderRepository(conn)
            order = await repo.get(rfq_id)
            quote = await repo.get_quote(quote_id) if order is not None else None
        return order, quote

    async def order_and_accepted_quote(self, rfq_id: str) -> tuple[Order | None, Quote | None]:
        """The order and the quote it accepted, if any, on one connection."""
        async with self._engine.connect() as conn:
            repo = OrderRepository(conn)
            order = await repo.get(rfq_id)
            accepted = await repo.get_quote(order.accepted_quote_id or "") if order else None
        return order, accepted

    async def overdue_last_looks(
        self, cutoff: datetime, limit: int, *, after: tuple[datetime, str] | None
    ) -> list[Order]:
        """One page of OrderRepository.overdue_last_looks."""
        async with self._engine.connect() as conn:
            return await OrderRepository(conn).overdue_last_looks(cutoff, limit, after=after)
