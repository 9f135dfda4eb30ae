"""Schemas of the walking skeleton: rfq (edge), order_core, risk, settlement.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from migrations.sql import run_script

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _outbox_and_inbox(schema: str) -> str:
    """Every schema gets the same outbox (with a NOTIFY to wake the relay) and inbox."""
    return f"""
    CREATE TABLE {schema}.outbox (
        id          bigserial PRIMARY KEY,
        topic       text NOT NULL,
        key         text NOT NULL,
        event_id    text NOT NULL UNIQUE,
        payload     bytea NOT NULL,
        created_at  timestamptz NOT NULL DEFAULT now(),
        sent_at     timestamptz
    );
    CREATE INDEX outbox_unsent ON {schema}.outbox (id) WHERE sent_at IS NULL;
    CREATE FUNCTION {schema}.notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('{schema}_outbox', '');
        RETURN NULL;
    END $$;
    CREATE TRIGGER outbox_notify AFTER INSERT ON {schema}.outbox
        FOR EACH STATEMENT EXECUTE FUNCTION {schema}.notify_outbox();
    CREATE TABLE {schema}.processed_events (
        consumer      text NOT NULL,
        event_id      text NOT NULL,
        processed_at  timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (consumer, event_id)
    );
    """


def upgrade() -> None:
    for schema in ("rfq", "order_core", "risk", "settlement"):
        run_script(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    for schema in ("rfq", "order_core", "settlement"):
        run_script(_outbox_and_inbox(schema))

    run_script("""
    CREATE TABLE rfq.rfqs (
        rfq_id              text PRIMARY KEY,
        requester           text NOT NULL,
        client_rfq_id       text NOT NULL,
        request_hash        text NOT NULL,
        instrument          text NOT NULL,
        side                text NOT NULL,
        quantity            numeric NOT NULL CHECK (quantity > 0),
        counterparties      text[] NOT NULL,
        anonymous           boolean NOT NULL,
        response_window_ms  integer NOT NULL,
        created_at          timestamptz NOT NULL,
        expires_at          timestamptz NOT NULL,
        status              text NOT NULL,
        status_version      bigint NOT NULL DEFAULT 0,
        status_reason       text NOT NULL DEFAULT '',
        accepted_quote_id   text,
        price               numeric,
        trade_id            text,
        UNIQUE (requester, client_rfq_id)
    );
    CREATE INDEX rfqs_by_requester ON rfq.rfqs (requester, rfq_id DESC);
    CREATE TABLE rfq.quotes (
        quote_id     text PRIMARY KEY,
        rfq_id       text NOT NULL REFERENCES rfq.rfqs (rfq_id),
        maker        text NOT NULL,
        bid_px       numeric,
        offer_px     numeric,
        quantity     numeric NOT NULL,
        valid_until  timestamptz NOT NULL
    );
    CREATE INDEX quotes_by_rfq ON rfq.quotes (rfq_id);
    """)

    run_script("""
    CREATE TABLE order_core.orders (
        rfq_id              text PRIMARY KEY,
        requester           text NOT NULL,
        instrument          text NOT NULL,
        side                text NOT NULL,
        quantity            numeric NOT NULL CHECK (quantity > 0),
        counterparties      text[] NOT NULL,
        anonymous           boolean NOT NULL,
        state               text NOT NULL,
        version             bigint NOT NULL,
        rfq_expires_at      timestamptz NOT NULL,
        accepted_quote_id   text,
        accept_command_id   text,
        reservation_id      text,
        trade_side          text,
        price               numeric,
        lastlook_deadline   timestamptz,
        trade_id            text,
        created_at          timestamptz NOT NULL,
        updated_at          timestamptz NOT NULL
    );
    CREATE INDEX orders_open_by_deadline ON order_core.orders (rfq_expires_at)
        WHERE state IN ('RFQ_SENT', 'QUOTED');
    CREATE INDEX orders_lastlook_by_deadline ON order_core.orders (lastlook_deadline)
        WHERE state = 'PENDING_CONFIRMATION';
    CREATE TABLE order_core.quotes (
        quote_id     text PRIMARY KEY,
        rfq_id       text NOT NULL REFERENCES order_core.orders (rfq_id),
        maker        text NOT NULL,
        bid_px       numeric,
        offer_px     numeric,
        quantity     numeric NOT NULL,
        valid_until  timestamptz NOT NULL,
        received_at  timestamptz NOT NULL
    );
    CREATE INDEX order_quotes_by_rfq ON order_core.quotes (rfq_id);
    """)

    run_script("""
    CREATE TABLE risk.credit_lines (
        party         text PRIMARY KEY,
        currency      text NOT NULL,
        credit_limit  numeric NOT NULL CHECK (credit_limit >= 0),
        used          numeric NOT NULL DEFAULT 0 CHECK (used >= 0),
        frozen        numeric NOT NULL DEFAULT 0 CHECK (frozen >= 0),
        updated_at    timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE risk.reservations (
        reservation_id  text PRIMARY KEY,
        rfq_id          text NOT NULL,
        status          text NOT NULL,
        legs            jsonb NOT NULL,
        request_hash    text NOT NULL,
        reason          text NOT NULL DEFAULT '',
        deadline        timestamptz NOT NULL,
        created_at      timestamptz NOT NULL DEFAULT now(),
        updated_at      timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX reservations_frozen_by_deadline ON risk.reservations (deadline)
        WHERE status = 'FROZEN';
    """)

    run_script("""
    CREATE TABLE settlement.balances (
        party   text NOT NULL,
        asset   text NOT NULL,
        amount  numeric NOT NULL CHECK (amount >= 0),
        PRIMARY KEY (party, asset)
    );
    CREATE TABLE settlement.trades (
        trade_id    text PRIMARY KEY,
        rfq_id      text NOT NULL,
        instrument  text NOT NULL,
        buyer       text NOT NULL,
        seller      text NOT NULL,
        quantity    numeric NOT NULL,
        price       numeric NOT NULL,
        notional    numeric NOT NULL,
        status      text NOT NULL,
        reason      text NOT NULL DEFAULT '',
        booked_at   timestamptz NOT NULL
    );
    CREATE TABLE settlement.ledger_entries (
        id          bigserial PRIMARY KEY,
        trade_id    text NOT NULL REFERENCES settlement.trades (trade_id),
        party       text NOT NULL,
        asset       text NOT NULL,
        amount      numeric NOT NULL,
        booked_at   timestamptz NOT NULL
    );
    CREATE INDEX ledger_by_trade ON settlement.ledger_entries (trade_id);
    """)


def downgrade() -> None:
    for schema in ("settlement", "risk", "order_core", "rfq"):
        run_script(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
