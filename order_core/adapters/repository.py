"""The SQL of orders and quotes: `OrderRepository` inside a unit of work, where
every state change is a versioned update (zero rows updated means a concurrent
writer won, and the caller reloads and re-decides), and `OrderQueries` for the
reads made outside one."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from order_core.adapters.tables import OUTBOX_TABLES, orders, quotes
from order_core.domain.lifecycle import OPEN_STATES, OrderState
from order_core.domain.order import Order, Quote
from otc.errors import TransientError
from otc.sides import Side


class ConcurrentUpdate(TransientError):
    """The order's version moved between our read and our write."""


_MUTABLE = (
    "state",
    "accepted_quote_id",
    "reservation_id",
    "trade_side",
    "price",
    "lastlook_deadline",
    "trade_id",
    "updated_at",
)


def _order(row: RowMapping) -> Order:
    return Order(
        rfq_id=row["rfq_id"],
        requester=row["requester"],
        instrument=row["instrument"],
        side=Side(row["side"]),
        quantity=row["quantity"],
        counterparties=tuple(row["counterparties"]),
        anonymous=row["anonymous"],
        rfq_expires_at=row["rfq_expires_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        state=OrderState(row["state"]),
        version=row["version"],
        accepted_quote_id=row["accepted_quote_id"],
        reservation_id=row["reservation_id"],
        trade_side=Side(row["trade_side"]) if row["trade_side"] else None,
        price=row["price"],
        lastlook_deadline=row["lastlook_deadline"],
        trade_id=row["trade_id"],
    )


def _quote(row: RowMapping) -> Quote:
    return Quote(
        quote_id=row["quote_id"],
        rfq_id=row["rfq_id"],
        maker=row["maker"],
        bid_px=row["bid_px"],
        offer_px=row["offer_px"],
        quantity=row["quantity"],
        valid_until=row["valid_until"],
    )


def _values(order: Order) -> dict[str, Any]:
    values: dict[str, Any] = {name: getattr(order, name) for name in _MUTABLE}
    values["state"] = order.state.value
    values["trade_side"] = order.trade_side.value if order.trade_side else None
    return values


class OrderRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def get(self, rfq_id: str, *, lock: bool = False) -> Order | None:
        query = select(orders).where(orders.c.rfq_id == rfq_id)
        if lock:
            query = query.with_for_update()
        row = (await self._conn.execute(query)).mappings().first()
        return _order(row) if row else None

    async def add(self, order: Order) -> bool:
        """Inserts a new order; False when one with that rfq_id already exists."""
        values = _values(order) | {
            "rfq_id": order.rfq_id,
            "requester": order.requester,
            "instrument": order.instrument,
            "side": order.side.value,
            "quantity": order.quantity,
            "counterparties": list(order.counterparties),
            "anonymous": order.anonymous,
            "rfq_expires_at": order.rfq_expires_at,
            "created_at": order.created_at,
            "version": order.version,
        }
        result = await self._conn.execute(
            insert(orders).values(**values).on_conflict_do_nothing().returning(orders.c.rfq_id)
        )
        return result.first() is not None

    async def save(self, order: Order) -> None:
        """Writes the order if nobody else did since it was read; bumps its version."""
        result = await self._conn.execute(
            update(orders)
            .where(orders.c.rfq_id == order.rfq_id, orders.c.version == order.version)
            .values(**_values(order), version=orders.c.version + 1)
        )
        if result.rowcount != 1:
            raise ConcurrentUpdate(f"order {order.rfq_id} changed since version {order.version}")
        order.version += 1

    async def add_quote(self, quote: Quote, received_at: datetime) -> bool:
        result = await self._conn.execute(
            insert(quotes)
            .values(
                quote_id=quote.quote_id,
                rfq_id=quote.rfq_id,
                maker=quote.maker,
                bid_px=quote.bid_px,
                offer_px=quote.offer_px,
                quantity=quote.quantity,
                valid_until=quote.valid_until,
                received_at=received_at,
            )
            .on_conflict_do_nothing()
            .returning(quotes.c.quote_id)
        )
        return result.first() is not None

    async def get_quote(self, quote_id: str) -> Quote | None:
        row = (
            (await self._conn.execute(select(quotes).where(quotes.c.quote_id == quote_id)))
            .mappings()
            .first()
        )
        return _quote(row) if row else None

    async def overdue_rfqs(self, now: datetime, limit: int) -> list[Order]:
        """Open RFQs past their response window, locked (rows others hold are skipped)."""
        return await self._overdue(
            (OrderState.RFQ_SENT, OrderState.QUOTED), orders.c.rfq_expires_at, now, limit
        )

    async def open_created_before(self, close: datetime, limit: int) -> list[Order]:
        """Open RFQs created before `close`, locked. Rows another transaction holds are
        waited for, not skipped: once it commits, an order it closed no longer matches."""
        query = (
            select(orders)
            .where(orders.c.state.in_([s.value for s in OPEN_STATES]), orders.c.created_at < close)
            .order_by(orders.c.created_at)
            .limit(limit)
            .with_for_update()
        )
        return [_order(r) for r in (await self._conn.execute(query)).mappings()]

    async def overdue_last_looks(
        self, cutoff: datetime, limit: int, *, after: tuple[datetime, str] | None = None
    ) -> list[Order]:
        """Orders pending a last look whose window closed at or before `cutoff`, by
        (deadline, rfq_id) after `after`, so that a caller pages past any order it
        could not end. Not locked: ending one goes through a versioned update."""
        deadline = orders.c.lastlook_deadline
        query = select(orders).where(
            orders.c.state == OrderState.PENDING_CONFIRMATION.value, deadline <= cutoff
        )
        if after is not None:
            query = query.where(tuple_(deadline, orders.c.rfq_id) > tuple_(*after))
        query = query.order_by(deadline, orders.c.rfq_id).limit(limit)
        return [_order(r) for r in (await self._conn.execute(query)).mappings()]

    async def _overdue(
        self, states: tuple[OrderState, ...], deadline: Any, now: datetime, limit: int
    ) -> list[Order]:
        query = (
            select(orders)
            .where(orders.c.state.in_([s.value for s in states]), deadline <= now)
            .order_by(deadline)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [_order(r) for r in (await self._conn.execute(query)).mappings()]


class OrderQueries:
    """Reads outside any unit of work, each on its own connection, writing nothing: what
    a handler looks at before it calls out, and what the sweepers page through. A
    decision made on them is re-checked by the versioned update that follows."""

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
