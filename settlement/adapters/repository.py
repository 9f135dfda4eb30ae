"""All SQL of settlement, over the `settlement` schema that migration 0001 creates.

The tables here mirror that migration; the migration, not this module, owns the schema.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    MetaData,
    Numeric,
    Table,
    Text,
    bindparam,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from otc.outbox import outbox_table, processed_events_table
from otc.unit_of_work import OutboxTables
from settlement.domain.ledger import Account, Posting, Trade, TradeStatus, net_by_account

metadata = MetaData(schema="settlement")

balances = Table(
    "balances",
    metadata,
    Column("party", Text, primary_key=True),
    Column("asset", Text, primary_key=True),
    Column("amount", Numeric, nullable=False),
    CheckConstraint("amount >= 0"),
)

trades = Table(
    "trades",
    metadata,
    Column("trade_id", Text, primary_key=True),
    Column("rfq_id", Text, nullable=False),
    Column("instrument", Text, nullable=False),
    Column("buyer", Text, nullable=False),
    Column("seller", Text, nullable=False),
    Column("quantity", Numeric, nullable=False),
    Column("price", Numeric, nullable=False),
    Column("notional", Numeric, nullable=False),
    Column("status", Text, nullable=False),
    Column("reason", Text, nullable=False, server_default=""),
    Column("booked_at", DateTime(timezone=True), nullable=False),
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("trade_id", Text, ForeignKey(trades.c.trade_id), nullable=False),
    Column("party", Text, nullable=False),
    Column("asset", Text, nullable=False),
    Column("amount", Numeric, nullable=False),
    Column("booked_at", DateTime(timezone=True), nullable=False),
    Index("ledger_by_trade", "trade_id"),
)

OUTBOX_TABLES = OutboxTables(
    outbox=outbox_table(metadata), processed_events=processed_events_table(metadata)
)


class LedgerRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def lock_balances(self, accounts: Iterable[Account]) -> dict[Account, Decimal]:
        """Locks the existing balance rows of these accounts and returns their amounts.

        Rows are locked in (party, asset) order, byte-wise like Python's `sorted`, so
        two bookings that touch the same accounts queue behind each other instead of
        deadlocking.
        """
        b = balances
        wanted = sorted(set(accounts))
        rows = await self._conn.execute(
            select(b.c.party, b.c.asset, b.c.amount)
            .where(tuple_(b.c.party, b.c.asset).in_(wanted))
            .order_by(b.c.party.collate("C"), b.c.asset.collate("C"))
            .with_for_update()
        )
        return {Account(r.party, r.asset): r.amount for r in rows}

    async def add_trade(
        self, trade: Trade, status: TradeStatus, reason: str, booked_at: datetime
    ) -> bool:
        """Records the trade and its outcome; False when the trade id is booked already.

        The primary key decides, not a prior lookup, so two deliveries racing with
        different message ids still book the trade once.
        """
        result = await self._conn.execute(
            insert(trades)
            .values(
                trade_id=trade.trade_id,
                rfq_id=trade.rfq_id,
                instrument=trade.instrument.symbol,
                buyer=trade.buyer,
                seller=trade.seller,
                quantity=trade.quantity,
                price=trade.price,
                notional=trade.notional,
                status=status.value,
                reason=reason,
                booked_at=booked_at,
            )
            .on_conflict_do_nothing(index_elements=[trades.c.trade_id])
            .returning(trades.c.trade_id)
        )
        return result.first() is not None

    async def post(self, trade_id: str, postings: Iterable[Posting], booked_at: datetime) -> None:
        """Moves the balances and journals every posting against the trade.

        Debits update rows that `lock_balances` holds; credits are upserts, because a
        receiving account may not exist yet. PostgreSQL checks a row proposed for
        insertion before resolving the conflict, so only credits, never negative
        amounts, may go through the upsert. The balance check constraint is the last
        guard against an overdraft.
        """
        postings = tuple(postings)
        nets = net_by_account(postings)
        debits = [(account, amount) for account, amount in nets.items() if amount < 0]
        credits = [(account, amount) for account, amount in nets.items() if amount > 0]
        if debits:
            await self._conn.execute(
                update(balances)
                .where(
                    balances.c.party == bindparam("debit_party"),
                    balances.c.asset == bindparam("debit_asset"),
                )
                .values(amount=balances.c.amount + bindparam("debit_amount")),
                [
                    {"debit_party": a.party, "debit_asset": a.asset, "debit_amount": amount}
                    for a, amount in debits
                ],
            )
        if credits:
            upsert = insert(balances).values(
                [{"party": a.party, "asset": a.asset, "amount": amount} for a, amount in credits]
            )
            await self._conn.execute(
                upsert.on_conflict_do_update(
                    index_elements=[balances.c.party, balances.c.asset],
                    set_={"amount": balances.c.amount + upsert.excluded.amount},
                )
            )
        await self._conn.execute(
            insert(ledger_entries),
            [
                {
                    "trade_id": trade_id,
                    "party": p.party,
                    "asset": p.asset,
                    "amount": p.amount,
                    "booked_at": booked_at,
                }
                for p in postings
            ],
        )

    async def open_accounts(self, amounts: Mapping[Account, Decimal]) -> None:
        """Creates the balances that do not exist yet; existing ones keep their amount,
        because the ledger already explains them."""
        await self._conn.execute(
            insert(balances)
            .values(
                [
                    {"party": account.party, "asset": account.asset, "amount": amount}
                    for account, amount in sorted(amounts.items())
                ]
            )
            .on_conflict_do_nothing(index_elements=[balances.c.party, balances.c.asset])
        )
