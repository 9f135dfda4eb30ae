"""Table definitions of the `rfq` schema: the RFQs the edge accepted, and its
read model of their order state and quotes (fed from `order.events`)."""

from __future__ import annotations

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Integer,
    MetaData,
    Numeric,
    Table,
    Text,
)

from otc.outbox import outbox_table, processed_events_table
from otc.unit_of_work import OutboxTables

metadata = MetaData(schema="rfq")

rfqs = Table(
    "rfqs",
    metadata,
    Column("rfq_id", Text, primary_key=True),
    Column("requester", Text, nullable=False),
    Column("client_rfq_id", Text, nullable=False),
    Column("request_hash", Text, nullable=False),
    Column("instrument", Text, nullable=False),
    Column("side", Text, nullable=False),
    Column("quantity", Numeric, nullable=False),
    Column("counterparties", ARRAY(Text), nullable=False),
    Column("anonymous", Boolean, nullable=False),
    Column("response_window_ms", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("status", Text, nullable=False),
    Column("status_version", BigInteger, nullable=False),
    Column("status_reason", Text, nullable=False),
    Column("accepted_quote_id", Text),
    Column("price", Numeric),
    Column("trade_id", Text),
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
    Column("withdrawn_reason", Text),
)

OUTBOX_TABLES = OutboxTables(outbox_table(metadata), processed_events_table(metadata))
