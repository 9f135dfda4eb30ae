"""Settlement's trading day: instructions that wait and retry, value dates, journals,
funding, blocked accounts, and a ledger that can only grow.

A trade row is also its settlement instruction: PENDING until it settles or is
given up on, with its value date, the attempts made and when the next is due
(NULL while it waits for the value-date batch). Every movement of funds is a
journal (a trade, a deposit, a withdrawal) whose postings sum to zero per asset;
money entering or leaving the platform is posted against `@external`, which has
no balance row. A balance carried from before this revision is explained by an
opening journal, so that every balance equals the sum of its postings. Journals
and postings refuse UPDATE, DELETE and TRUNCATE.

Revision ID: 0005
Revises: 0001
Create Date: 2026-11-22
"""

from migrations.sql import run_script

revision = "0005"
down_revision = "0001"
branch_labels = ("settlement",)
depends_on = None


def upgrade() -> None:
    run_script("""
    ALTER TABLE settlement.trades
        ADD COLUMN confirmed_at     timestamptz,
        ADD COLUMN value_date       date,
        ADD COLUMN attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
        ADD COLUMN next_attempt_at  timestamptz,
        ADD COLUMN settled_at       timestamptz,
        ADD COLUMN correlation_id   text NOT NULL DEFAULT '',
        ADD COLUMN causation_id     text NOT NULL DEFAULT '';
    -- Trades booked so far were settled or failed on arrival, in one attempt.
    UPDATE settlement.trades SET
        confirmed_at = booked_at,
        value_date = (booked_at AT TIME ZONE 'UTC')::date,
        attempts = 1,
        settled_at = booked_at;
    ALTER TABLE settlement.trades
        ALTER COLUMN confirmed_at SET NOT NULL,
        ALTER COLUMN value_date SET NOT NULL,
        ADD CONSTRAINT trades_status_known CHECK (status IN ('PENDING', 'SETTLED', 'FAILED')),
        ADD CONSTRAINT trades_finished_once_settled CHECK ((status = 'PENDING') = (settled_at IS NULL));
    CREATE INDEX trades_due ON settlement.trades (next_attempt_at) WHERE status = 'PENDING';
    CREATE INDEX trades_pending_by_value_date ON settlement.trades (value_date)
        WHERE status = 'PENDING';
    -- what the end-of-day batch looks a day up by
    CREATE INDEX trades_by_confirmed_at ON settlement.trades (confirmed_at);
    CREATE INDEX trades_by_settled_at ON settlement.trades (settled_at);
    CREATE INDEX trades_by_value_date ON settlement.trades (value_date);

    ALTER TABLE settlement.balances
        ADD COLUMN blocked         boolean NOT NULL DEFAULT false,
        ADD COLUMN blocked_reason  text NOT NULL DEFAULT '';

    CREATE TABLE settlement.journals (
        journal_id  bigserial PRIMARY KEY,
        kind        text NOT NULL CHECK (kind IN ('trade', 'deposit', 'withdrawal')),
        reference   text NOT NULL,  -- the trade id, or the caller's id of a funding move
        memo        text NOT NULL DEFAULT '',
        value_date  date NOT NULL,
        booked_at   timestamptz NOT NULL,
        UNIQUE (kind, reference)
    );
    CREATE INDEX journals_by_value_date ON settlement.journals (value_date);

    ALTER TABLE settlement.ledger_entries
        ADD COLUMN journal_id bigint REFERENCES settlement.journals (journal_id),
        ALTER COLUMN trade_id DROP NOT NULL;
    INSERT INTO settlement.journals (kind, reference, value_date, booked_at)
        SELECT 'trade', t.trade_id, t.value_date, t.booked_at FROM settlement.trades t
        WHERE EXISTS (SELECT 1 FROM settlement.ledger_entries e WHERE e.trade_id = t.trade_id);
    UPDATE settlement.ledger_entries e SET journal_id = j.journal_id
        FROM settlement.journals j WHERE j.kind = 'trade' AND j.reference = e.trade_id;

    WITH unexplained AS (
        SELECT b.party, b.asset, b.amount - coalesce(sum(e.amount), 0) AS amount
        FROM settlement.balances b
        LEFT JOIN settlement.ledger_entries e ON e.party = b.party AND e.asset = b.asset
        GROUP BY b.party, b.asset, b.amount
        HAVING b.amount - coalesce(sum(e.amount), 0) <> 0
    ), opened AS (
        INSERT INTO settlement.journals (kind, reference, memo, value_date, booked_at)
        SELECT CASE WHEN amount > 0 THEN 'deposit' ELSE 'withdrawal' END,
               'opening:' || party || ':' || asset,
               'balance carried into the ledger',
               (now() AT TIME ZONE 'UTC')::date,
               now()
        FROM unexplained
        RETURNING journal_id, reference
    )
    INSERT INTO settlement.ledger_entries (journal_id, party, asset, amount, booked_at)
        SELECT o.journal_id, leg.party, u.asset, leg.amount, now()
        FROM unexplained u
        JOIN opened o ON o.reference = 'opening:' || u.party || ':' || u.asset
        CROSS JOIN LATERAL (VALUES (u.party, u.amount), ('@external', -u.amount))
            AS leg (party, amount);

    ALTER TABLE settlement.ledger_entries ALTER COLUMN journal_id SET NOT NULL;
    CREATE INDEX ledger_by_journal ON settlement.ledger_entries (journal_id);
    CREATE INDEX ledger_by_account ON settlement.ledger_entries (party, asset);

    -- Statement-level, so an UPDATE or DELETE is refused even when it matches no row.
    CREATE FUNCTION settlement.refuse_ledger_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'settlement.% is append-only: % refused', TG_TABLE_NAME, TG_OP
            USING HINT = 'a booking is corrected by a new journal, never by editing one';
    END $$;
    CREATE TRIGGER journals_append_only
        BEFORE UPDATE OR DELETE OR TRUNCATE ON settlement.journals
        FOR EACH STATEMENT EXECUTE FUNCTION settlement.refuse_ledger_change();
    CREATE TRIGGER ledger_entries_append_only
        BEFORE UPDATE OR DELETE OR TRUNCATE ON settlement.ledger_entries
        FOR EACH STATEMENT EXECUTE FUNCTION settlement.refuse_ledger_change();
    """)


def downgrade() -> None:
    run_script("""
    DROP TRIGGER ledger_entries_append_only ON settlement.ledger_entries;
    DROP TRIGGER journals_append_only ON settlement.journals;
    DROP FUNCTION settlement.refuse_ledger_change();
    DELETE FROM settlement.ledger_entries WHERE trade_id IS NULL;
    DROP INDEX settlement.ledger_by_account;
    ALTER TABLE settlement.ledger_entries
        DROP COLUMN journal_id,
        ALTER COLUMN trade_id SET NOT NULL;
    DROP TABLE settlement.journals;
    ALTER TABLE settlement.balances DROP COLUMN blocked_reason, DROP COLUMN blocked;
    DROP INDEX settlement.trades_by_value_date;
    DROP INDEX settlement.trades_by_settled_at;
    DROP INDEX settlement.trades_by_confirmed_at;
    DROP INDEX settlement.trades_pending_by_value_date;
    DROP INDEX settlement.trades_due;
    ALTER TABLE settlement.trades
        DROP CONSTRAINT trades_finished_once_settled,
        DROP CONSTRAINT trades_status_known,
        DROP COLUMN causation_id,
        DROP COLUMN correlation_id,
        DROP COLUMN settled_at,
        DROP COLUMN next_attempt_at,
        DROP COLUMN attempts,
        DROP COLUMN value_date,
        DROP COLUMN confirmed_at;
    """)
