"""Credit model of risk_limits: bilateral lines, reference rates, settled reservations.

A reservation now records what it holds on each line (gross or bilateral) in that
line's currency, so that Commit, Release, expiry and settlement move exactly what
the Freeze took even after the reference rates have changed. Reservations already
in flight held credit on gross lines only, in their legs' currency, which is how
they are backfilled.

At most one reservation of an RFQ is COMMITTED at a time (an order confirms once):
settlement events name the RFQ, not the reservation, and this index is what makes
that lookup unambiguous.

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-29
"""

from migrations.sql import run_script

revision = "0003"
down_revision = "0001"
branch_labels = ("risk",)
depends_on = None


def upgrade() -> None:
    run_script("""
    CREATE TABLE risk.bilateral_lines (
        party         text NOT NULL,
        counterparty  text NOT NULL,
        currency      text NOT NULL,
        credit_limit  numeric NOT NULL CHECK (credit_limit >= 0),
        used          numeric NOT NULL DEFAULT 0 CHECK (used >= 0),
        frozen        numeric NOT NULL DEFAULT 0 CHECK (frozen >= 0),
        updated_at    timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (party, counterparty),
        CHECK (party <> counterparty)
    );
    CREATE TABLE risk.reference_rates (
        currency     text PRIMARY KEY,
        rate_in_usd  numeric NOT NULL CHECK (rate_in_usd > 0),
        updated_at   timestamptz NOT NULL DEFAULT now()
    );
    -- USD is the unit every rate is quoted in: its rate is 1 by definition.
    INSERT INTO risk.reference_rates (currency, rate_in_usd) VALUES ('USD', 1);
    CREATE TABLE risk.processed_events (
        consumer      text NOT NULL,
        event_id      text NOT NULL,
        processed_at  timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (consumer, event_id)
    );
    ALTER TABLE risk.reservations ADD COLUMN holds jsonb NOT NULL DEFAULT '[]';
    UPDATE risk.reservations r SET holds = (
        SELECT coalesce(jsonb_agg(jsonb_build_object(
            'party', leg->>'party',
            'counterparty', '',
            'amount', leg->>'amount',
            'currency', leg->>'currency'
        )), '[]')
        FROM jsonb_array_elements(r.legs) AS leg
    );
    ALTER TABLE risk.reservations ADD CONSTRAINT reservations_status_known CHECK (status IN (
        'FROZEN', 'COMMITTED', 'RELEASED', 'EXPIRED', 'REJECTED', 'SETTLED', 'SETTLEMENT_FAILED'
    ));
    CREATE UNIQUE INDEX reservations_one_committed_per_rfq ON risk.reservations (rfq_id)
        WHERE status = 'COMMITTED';
    """)


def downgrade() -> None:
    run_script("""
    DROP INDEX risk.reservations_one_committed_per_rfq;
    ALTER TABLE risk.reservations DROP CONSTRAINT reservations_status_known;
    ALTER TABLE risk.reservations DROP COLUMN holds;
    DROP TABLE risk.processed_events;
    DROP TABLE risk.reference_rates;
    DROP TABLE risk.bilateral_lines;
    """)
