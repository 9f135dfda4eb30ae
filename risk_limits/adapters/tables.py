"""The `risk` schema as SQLAlchemy Core tables, mirroring the Alembic migrations."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, MetaData, Numeric, Table, Text, text
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData(schema="risk")

credit_lines = Table(
    "credit_lines",
    metadata,
    Column("party", Text, primary_key=True),
    Column("currency", Text, nullable=False),
    Column("credit_limit", Numeric(asdecimal=True), nullable=False),
    Column("used", Numeric(asdecimal=True), nullable=False, server_default=text("0")),
    Column("frozen", Numeric(asdecimal=True), nullable=False, server_default=text("0")),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

bilateral_lines = Table(
    "bilateral_lines",
    metadata,
    Column("party", Text, primary_key=True),
    Column("counterparty", Text, primary_key=True),
    Column("currency", Text, nullable=False),
    Column("credit_limit", Numeric(asdecimal=True), nullable=False),
    Column("used", Numeric(asdecimal=True), nullable=False, server_default=text("0")),
    Column("frozen", Numeric(asdecimal=True), nullable=False, server_default=text("0")),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

reference_rates = Table(
    "reference_rates",
    metadata,
    Column("currency", Text, primary_key=True),
    Column("rate_in_usd", Numeric(asdecimal=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

reservations = Table(
    "reservations",
    metadata,
    Column("reservation_id", Text, primary_key=True),
    Column("rfq_id", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("legs", JSONB, nullable=False),
    Column("holds", JSONB, nullable=False),
    Column("request_hash", Text, nullable=False),
    Column("reason", Text, nullable=False, server_default=text("''")),
    Column("deadline", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

processed_events = Table(
    "processed_events",
    metadata,
    Column("consumer", Text, primary_key=True),
    Column("event_id", Text, primary_key=True),
    Column("processed_at", DateTime(timezone=True), nullable=False),
)
