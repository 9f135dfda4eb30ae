"""Every invariant over one snapshot: pure, so each can be proved on rows made up
by a test, without a server."""

from __future__ import annotations

from datetime import timedelta

from .ledgers import audit_breaks, credit_breaks, ledger_breaks, trade_journal_breaks
from .orders import booking_breaks, deadline_breaks, reservation_breaks
from .snapshot import Break, Horizon, Snapshot


def find_breaks(snapshot: Snapshot, grace: timedelta) -> list[Break]:
    """Every break in `snapshot`, sorted, so that the same books give the same list."""
    s, horizon = snapshot, Horizon(snapshot.now, grace)
    found = {
        *deadline_breaks(s.orders, horizon),
        *reservation_breaks(s.orders, s.reservations, horizon),
        *booking_breaks(s.orders, s.trades, horizon),
        *credit_breaks(s.lines, s.reservations),
        *ledger_breaks(s.journal_sums, s.accounts),
        *trade_journal_breaks(s.trades),
        *audit_breaks(s.audit),
    }
    return sorted(found, key=lambda b: (b.invariant, b.detail))
