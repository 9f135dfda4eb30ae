"""Table definitions of the `order_core` schema (created by migrations/)."""

from __future__ import annotations

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    MetaData,
    Numeric,
    Table,
    Text,
)

from otc.outbox import outbox_table, processed_events_table
from otc.unit_of_work import OutboxTables

metadata = MetaData(schema="order_core")

orders = Table(
    "orders",
    metadata,
    Column("rfq_id", Text, primary_key=True),
    Column("requester", Text, nullable=False),
    Column("instrument", Text, nullable=False),
    Column("side", Text, nullable=False),
    Column("quantity", Numeric, nullable=False),
    Column("counterparties", ARRAY(Text), nullable=False),
    Column("anonymous", Boolean, nullable=False),
    Column("state", Text, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("rfq_expires_at", DateTime(timezone=True), nullable=False),
    Column("accepted_quote_id", Text),
    Column("reservation_id", Text),
    Column("trade_side", Text),
    Column("price", Numeric),
    Column("lastlook_deadline", DateTime(timezone=True)),
    Column("trade_id", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

quotes = Table(
    "quotes",
    metadata,
    Column("quote_id", Text, primary_key=True),
    Column("rfq_id", Text, nullable=False),
    Column("maker", Text, nullable=False),
    Column("bid_px", Numeric),
    Column("offer_px", Numeric),
    Column("quantity", Numeric, nullable=False),
    Column("valid_until", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
)

OUTBOX_TABLES = OutboxTables(outbox_table(metadata), processed_events_table(metadata))
