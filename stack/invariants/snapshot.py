"""What the invariant checker reads and what it answers, as plain values: the rows
of every service's books as one snapshot saw them, and the breaks found in them.

States and statuses stay strings, not enums: a checker must be able to describe a
row whose state no enum knows, rather than crash on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from order_core.domain.trail_verifier import Finding
from risk_limits.domain.credit import Hold, LineKey


@dataclass(frozen=True)
class Break:
    """One broken invariant: `invariant` is a stable slug (`order_stuck_pending`),
    `detail` names the rows involved and the numbers that disagree."""

    invariant: str
    detail: str


@dataclass(frozen=True, slots=True)
class OrderRow:
    rfq_id: str
    state: str
    reservation_id: str | None
    trade_id: str | None
    rfq_expires_at: datetime
    lastlook_deadline: datetime | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ReservationRow:
    reservation_id: str
    rfq_id: str
    status: str
    holds: tuple[Hold, ...]
    updated_at: datetime
    deadline: datetime


@dataclass(frozen=True, slots=True)
class LineRow:
    key: LineKey
    currency: str
    limit: Decimal
    used: Decimal
    frozen: Decimal


@dataclass(frozen=True, slots=True)
class TradeRow:
    """A settlement instruction, with how many trade journals reference it."""

    trade_id: str
    rfq_id: str
    status: str
    booked_at: datetime
    settled_at: datetime | None
    journals: int


@dataclass(frozen=True, slots=True)
class JournalSum:
    """What one journal's postings in one asset sum to."""

    journal_id: int
    kind: str
    reference: str
    asset: str
    total: Decimal


@dataclass(frozen=True, slots=True)
class AccountRow:
    """An account's balance row beside the sum of its postings; either may be missing."""

    party: str
    asset: str
    balance: Decimal | None
    postings: Decimal


@dataclass(frozen=True, slots=True)
class Snapshot:
    now: datetime  # the moment the snapshot shows
    orders: tuple[OrderRow, ...]
    reservations: tuple[ReservationRow, ...]
    lines: tuple[LineRow, ...]
    trades: tuple[TradeRow, ...]
    journal_sums: tuple[JournalSum, ...]
    accounts: tuple[AccountRow, ...]
    audit: Finding | None  # the first thing in the audit trail that does not hold, if any


@dataclass(frozen=True, slots=True)
class Horizon:
    """Which rows are settled enough to judge. Services commit one after another
    (risk_limits freezes before order_core records the accept; settlement announces
    before risk_limits and order_core apply it), so two rows may disagree for a few
    milliseconds; only a disagreement older than `grace` is a break."""

    now: datetime
    grace: timedelta

    def passed(self, *moments: datetime | None) -> bool:
        """Whether every one of `moments` is more than `grace` ago."""
        known = [m for m in moments if m is not None]
        return bool(known) and max(known) + self.grace < self.now


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
