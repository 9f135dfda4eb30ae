"""The edge's SQL. `RfqRepository` writes RFQ rows (idempotent on requester +
client_rfq_id) and the read model that `order.events` keeps up to date;
`RfqQueries` is what its HTTP and WebSocket reads show, run in a unit of work
that never commits, so nothing there can change a row."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from rfq_service.adapters.tables import quotes, rfqs
from rfq_service.domain.rfq import RfqSpec

INITIAL_STATUS = "RFQ_SENT"

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


class RfqRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def insert(
        self, rfq_id: str, requester: str, spec: RfqSpec, created_at: datetime
    ) -> bool:
        """False when this requester already used this client_rfq_id."""
        result = await self._conn.execute(
            insert(rfqs)
            .values(
                rfq_id=rfq_id,
                requester=requester,
                client_rfq_id=spec.client_rfq_id,
                request_hash=spec.request_hash(),
                instrument=spec.instrument,
                side=spec.side.value,
                quantity=spec.quantity,
                counterparties=list(spec.counterparties),
                anonymous=spec.anonymous,
                response_window_ms=spec.response_window_ms,
                created_at=created_at,
                expires_at=spec.expires_at(created_at),
                status=INITIAL_STATUS,
                status_version=0,
                status_reason="",
                updated_at=created_at,
            )
            .on_conflict_do_nothing(index_elements=["requester", "client_rfq_id"])
            .returning(rfqs.c.rfq_id)
        )
        return result.first() is not None

    async def by_client_id(self, requester: str, client_rfq_id: str) -> RowMapping | None:
        query = select(rfqs).where(
            rfqs.c.requester == requester, rfqs.c.client_rfq_id == client_rfq_id
        )
        return (await self._conn.execute(query)).mappings().first()

    async def get(self, rfq_id: str) -> RowMapping | None:
        return await rfq_by_id(self._conn, rfq_id)

    async def apply_status(
        self,
        rfq_id: str,
        *,
        at: datetime,
        status: str,
        version: int,
        reason: str,
        accepted_quote_id: str | None,
        price: Decimal | None,
        trade_id: str | None,
    ) -> bool:
        """Moves the read model forward only: an older or repeated event changes nothing."""
        values: dict[str, Any] = {
            "status": status,
            "status_version": version,
            "status_reason": reason,
            "accepted_quote_id": accepted_quote_id,
            "price": price,
            "trade_id": trade_id,
            "updated_at": at,
        }
        result = await self._conn.execute(
            update(rfqs)
            .where(rfqs.c.rfq_id == rfq_id, rfqs.c.status_version < version)
            .values(**values)
        )
        return result.rowcount == 1

    async def add_quote(self, values: dict[str, Any], at: datetime) -> bool:
        result = await self._conn.execute(
            insert(quotes).values(**values).on_conflict_do_nothing().returning(quotes.c.quote_id)
        )
        added = result.first() is not None
        if added:
            await self._touch(values["rfq_id"], at)
        return added

    async def withdraw_quote(self, rfq_id: str, quote_id: str, reason: str, at: datetime) -> bool:
        """False when the quote is unknown here or was already withdrawn."""
        result = await self._conn.execute(
            update(quotes)
            .where(
                quotes.c.quote_id == quote_id,
                quotes.c.rfq_id == rfq_id,
                quotes.c.withdrawn_reason.is_(None),
            )
            .values(withdrawn_reason=reason or "withdrawn")
        )
        if result.rowcount != 1:
            return False
        await self._touch(rfq_id, at)
        return True

    async def _touch(self, rfq_id: str, at: datetime) -> None:
        await self._conn.execute(update(rfqs).where(rfqs.c.rfq_id == rfq_id).values(updated_at=at))
