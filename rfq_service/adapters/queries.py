"""Read-only SQL of the edge: what its HTTP and WebSocket reads show. They run in
a unit of work that never commits, so nothing here can change a row."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from rfq_service.adapters.tables import quotes, rfqs

# Once an order is in one of these, nothing more happens to it.
FINAL_STATUSES = ("SETTLED", "CANCELLED", "EXPIRED", "REJECTED", "SETTLEMENT_FAILED")


async def rfq_by_id(conn: AsyncConnection, rfq_id: str) -> RowMapping | None:
    return (await conn.execute(select(rfqs).where(rfqs.c.rfq_id == rfq_id))).mappings().first()


class RfqQueries:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def get(self, rfq_id: str) -> RowMapping | None:
        return await rfq_by_id(self._conn, rfq_id)

    async def quotes_of(self, rfq_id: str) -> list[RowMapping]:
        query = select(quotes).where(quotes.c.rfq_id == rfq_id).order_by(quotes.c.quote_id)
        return list((await self._conn.execute(query)).mappings())

    async def list_for(
        self, requester: str, *, status: str | None, cursor: str | None, limit: int
    ) -> list[RowMapping]:
        query = select(rfqs).where(rfqs.c.requester == requester)
        if status:
            query = query.where(rfqs.c.status == status)
        if cursor:
            query = query.where(rfqs.c.rfq_id < cursor)
        query = query.order_by(rfqs.c.rfq_id.desc()).limit(limit)
        return list((await self._conn.execute(query)).mappings())

    async def changed_for(self, requester: str, since: datetime | None) -> list[RowMapping]:
        """The requester's RFQs still in play, and those that changed since `since`."""
        live = rfqs.c.status.not_in(FINAL_STATUSES)
        condition = live if since is None else live | (rfqs.c.updated_at >= since)
        query = select(rfqs).where(rfqs.c.requester == requester, condition).order_by(rfqs.c.rfq_id)
        return list((await self._conn.execute(query)).mappings())
