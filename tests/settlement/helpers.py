"""What the settlement tests share: funded parties, trades, bookings, and reads of
the schema."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine

from otc.bus.envelope import Message, decode, type_name
from otc.calendar import ALWAYS_OPEN
from otc.clock import Clock, SystemClock
from otc.contracts import events_pb2
from otc.ids import new_id
from settlement.adapters.tables import OUTBOX_TABLES, balances, journals, ledger_entries, trades
from settlement.domain.commands import BookTrade
from settlement.domain.instructions import RetryPolicy
from settlement.domain.ledger import Account
from settlement.entrypoints.consumer import book_trade_command
from settlement.seed import DEMO_BALANCES, seed_demo_balances
from settlement.service_layer.handlers import Outcome, Rules, book_trade
from settlement.service_layer.unit_of_work import SettlementUnitOfWork

SETTLED = type_name(events_pb2.TradeSettled())
FAILED = type_name(events_pb2.SettlementFailed())


def rules(max_attempts: int = 1, base_ms: int = 100, max_ms: int = 400) -> Rules:
    """Settlement rules for tests: one attempt (fail at once) unless told otherwise."""
    return Rules(
        calendar=ALWAYS_OPEN,
        retry=RetryPolicy(
            max_attempts=max_attempts,
            base_delay=timedelta(milliseconds=base_ms),
            max_delay=timedelta(milliseconds=max_ms),
        ),
    )


def uow(engine: AsyncEngine, clock: Clock | None = None) -> SettlementUnitOfWork:
    return SettlementUnitOfWork(engine, clock=clock or SystemClock())


async def funded_parties(engine: AsyncEngine) -> tuple[str, str]:
    """A buyer and a seller no other test uses, each holding the demo balances."""
    suffix = uuid.uuid4().hex[:12]
    buyer, seller = f"BUYER-{suffix}", f"SELLER-{suffix}"
    await seed_demo_balances(engine, (buyer, seller))
    return buyer, seller


def confirmed(
    buyer: str,
    seller: str,
    *,
    quantity: str = "2.5",
    price: str = "65000.10",
    rfq_id: str | None = None,
    instrument: str = "BTC-USD",
    at: datetime | None = None,
) -> events_pb2.TradeConfirmed:
    trade = events_pb2.TradeConfirmed(
        trade_id=new_id(),
        rfq_id=rfq_id or new_id(),
        quote_id=new_id(),
        instrument=instrument,
        buyer=buyer,
        seller=seller,
        quantity=quantity,
        price=price,
        notional=str(Decimal(quantity) * Decimal(price)),
    )
    trade.confirmed_at.FromDatetime(at or datetime.now(UTC))
    return trade


def command(trade: events_pb2.TradeConfirmed, event_id: str | None = None) -> BookTrade:
    message = Message(
        event_id=event_id or new_id(),
        type=type_name(trade),
        occurred_at=SystemClock().now(),
        producer="settlement-test",
        correlation_id=new_id(),
        causation_id="",
        payload=trade,
    )
    return book_trade_command(message)


async def book(
    engine: AsyncEngine, cmd: BookTrade, how: Rules | None = None, clock: Clock | None = None
) -> Outcome:
    return await book_trade(cmd, uow(engine, clock), how or rules())


def demo(asset: str) -> Decimal:
    return DEMO_BALANCES[asset]


async def balances_of(engine: AsyncEngine, *parties: str) -> dict[Account, Decimal]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(balances.c.party, balances.c.asset, balances.c.amount).where(
                balances.c.party.in_(parties)
            )
        )
        return {Account(r.party, r.asset): r.amount for r in rows}


async def trade_row(engine: AsyncEngine, trade_id: str) -> RowMapping | None:
    async with engine.connect() as conn:
        result = await conn.execute(select(trades).where(trades.c.trade_id == trade_id))
        return result.mappings().first()


async def ledger_of(engine: AsyncEngine, trade_id: str) -> list[RowMapping]:
    async with engine.connect() as conn:
        result = await conn.execute(
            select(ledger_entries, journals.c.value_date, journals.c.kind)
            .join(journals, journals.c.journal_id == ledger_entries.c.journal_id)
            .where(ledger_entries.c.trade_id == trade_id)
        )
        return list(result.mappings())


async def outbox_events(engine: AsyncEngine, rfq_id: str) -> list[Message]:
    """Every event settlement queued for this RFQ, in queueing order."""
    outbox = OUTBOX_TABLES.outbox
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(outbox.c.payload).where(outbox.c.key == rfq_id).order_by(outbox.c.id)
        )
        return [decode(r.payload) for r in rows]


def sums_by_asset(entries: list[RowMapping]) -> dict[str, Decimal]:
    sums: dict[str, Decimal] = {}
    for entry in entries:
        sums[entry["asset"]] = sums.get(entry["asset"], Decimal(0)) + entry["amount"]
    return sums
