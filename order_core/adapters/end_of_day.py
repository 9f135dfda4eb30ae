"""The SQL of the end of a trading day: the RFQs still open that it must expire."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from order_core.adapters.repository import _order
from order_core.adapters.tables import orders
from order_core.domain.lifecycle import OrderState
from order_core.domain.order import Order

OPEN = (OrderState.RFQ_SENT.value, OrderState.QUOTED.value)


async def open_rfqs_created_before(
    conn: AsyncConnection, close: datetime, limit: int
) -> list[Order]:
    """Open RFQs created before `close`, locked. Rows another transaction holds are
    waited for, not skipped: once it commits, an order it closed no longer matches."""
    query = (
        select(orders)
        .where(orders.c.state.in_(OPEN), orders.c.created_at < close)
        .order_by(orders.c.created_at)
        .limit(limit)
        .with_for_update()
    )
    return [_order(row) for row in (await conn.execute(query)).mappings()]
