"""order_core's audit trail: an append-only, hash-chained event table and its head.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from migrations.sql import run_script

revision = "0002"
down_revision = "0001"
branch_labels = ("order_core",)
depends_on = None


def upgrade() -> None:
    run_script("""
    -- seq is not a serial: the appender takes it from the locked head, so it has
    -- no gaps (a sequence loses values to rolled-back transactions, and a gap could
    -- not be told from a deleted row) and it follows commit order.
    CREATE TABLE order_core.audit_events (
        seq             bigint PRIMARY KEY CHECK (seq > 0),
        rfq_id          text NOT NULL,
        event_type      text NOT NULL,
        occurred_at     timestamptz NOT NULL,
        producer        text NOT NULL,
        event_id        text NOT NULL UNIQUE,
        correlation_id  text NOT NULL,
        causation_id    text NOT NULL,
        party           text NOT NULL,
        payload         jsonb NOT NULL,
        prev_hash       text NOT NULL,
        hash            text NOT NULL
    );
    CREATE INDEX audit_events_by_rfq ON order_core.audit_events (rfq_id, seq);
    CREATE INDEX audit_events_by_party ON order_core.audit_events (party, seq);
    CREATE INDEX audit_events_by_time ON order_core.audit_events (occurred_at);

    -- Statement-level, so an UPDATE or DELETE is refused even when it matches no row.
    CREATE FUNCTION order_core.refuse_audit_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'order_core.audit_events is append-only: % refused', TG_OP
            USING HINT = 'audit rows are never changed; append a correcting event instead';
    END $$;
    CREATE TRIGGER audit_events_append_only
        BEFORE UPDATE OR DELETE OR TRUNCATE ON order_core.audit_events
        FOR EACH STATEMENT EXECUTE FUNCTION order_core.refuse_audit_change();

    -- The last appended row. Every append locks this one row until it commits, which
    -- keeps the chain linear under concurrent writers; the cost is that all audited
    -- commits take turns on it (one hot row; one chain per shard if it is outgrown).
    CREATE TABLE order_core.audit_head (
        id    integer PRIMARY KEY CHECK (id = 1),
        seq   bigint NOT NULL CHECK (seq >= 0),
        hash  text NOT NULL
    );
    -- Seeded with the genesis hash (order_core.domain.audit.GENESIS_HASH), written out
    -- here because a migration must stay as it ran, whatever the code becomes.
    INSERT INTO order_core.audit_head (id, seq, hash) VALUES (1, 0, repeat('0', 64));
    """)


def downgrade() -> None:
    run_script("""
    DROP TABLE order_core.audit_head;
    DROP TABLE order_core.audit_events;
    DROP FUNCTION order_core.refuse_audit_change();
    """)
