"""The `settlement` schema as SQLAlchemy Core tables, mirroring migrations 0001 and
0005; the migrations, not this module, own the schema."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    Numeric,
    Table,
    Text,
)

from otc.outbox import outbox_table, processed_events_table
from otc.unit_of_work import OutboxTables

metadata = MetaData(schema="settlement")

balances = Table(
    "balances",
    metadata,
    Column("party", Text, primary_key=True),
    Column("asset", Text, primary_key=True),
    Column("amount", Numeric, nullable=False),
    Column("blocked", Boolean, nullable=False, server_default="false"),
    Column("blocked_reason", Text, nullable=False, server_default=""),
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
    Column("confirmed_at", DateTime(timezone=True), nullable=False),
    Column("value_date", Date, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True)),
    Column("settled_at", DateTime(timezone=True)),
    Column("correlation_id", Text, nullable=False, server_default=""),
    Column("causation_id", Text, nullable=False, server_default=""),
)

journals = Table(
    "journals",
    metadata,
    Column("journal_id", BigInteger, primary_key=True, autoincrement=True),
    Column("kind", Text, nullable=False),
    Column("reference", Text, nullable=False),
    Column("memo", Text, nullable=False, server_default=""),
    Column("value_date", Date, nullable=False),
    Column("booked_at", DateTime(timezone=True), nullable=False),
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("journal_id", BigInteger, ForeignKey(journals.c.journal_id), nullable=False),
    Column("trade_id", Text, ForeignKey(trades.c.trade_id)),
    Column("party", Text, nullable=False),
    Column("asset", Text, nullable=False),
    Column("amount", Numeric, nullable=False),
    Column("booked_at", DateTime(timezone=True), nullable=False),
)

OUTBOX_TABLES = OutboxTables(
    outbox=outbox_table(metadata), processed_events=processed_events_table(metadata)
)
