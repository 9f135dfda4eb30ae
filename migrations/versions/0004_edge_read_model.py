"""The edge's read model learns withdrawn quotes and when an RFQ last changed.

`updated_at` lets a reconnecting WebSocket client whose session cannot be resumed
get a snapshot of every RFQ that changed while it was away; `withdrawn_reason`
marks a quote the maker took back (or replaced), so it is no longer offered.

Revision ID: 0004
Revises: 0001
Create Date: 2026-11-22
"""

from migrations.sql import run_script

revision = "0004"
down_revision = "0001"
branch_labels = ("rfq",)
depends_on = None


def upgrade() -> None:
    run_script("""
    ALTER TABLE rfq.rfqs ADD COLUMN updated_at timestamptz;
    UPDATE rfq.rfqs SET updated_at = created_at;
    ALTER TABLE rfq.rfqs ALTER COLUMN updated_at SET NOT NULL;
    CREATE INDEX rfqs_by_requester_updated ON rfq.rfqs (requester, updated_at);
    ALTER TABLE rfq.quotes ADD COLUMN withdrawn_reason text;
    """)


def downgrade() -> None:
    run_script("""
    ALTER TABLE rfq.quotes DROP COLUMN withdrawn_reason;
    DROP INDEX rfq.rfqs_by_requester_updated;
    ALTER TABLE rfq.rfqs DROP COLUMN updated_at;
    """)
