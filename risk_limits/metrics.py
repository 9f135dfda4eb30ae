"""Prometheus metrics of the credit service, labelled by how each call ended."""

from __future__ import annotations

from prometheus_client import Counter

FREEZES = Counter(
    "otc_risk_freezes_total",
    "Freeze calls, by outcome (frozen, rejected, replayed, invalid: malformed, unknown party "
    "or missing reference rate)",
    ["outcome"],
)
COMMITS = Counter(
    "otc_risk_commits_total",
    "Commit calls, by outcome (committed, replayed, expired: past the deadline, refused, "
    "not_found, invalid)",
    ["outcome"],
)
RELEASES = Counter(
    "otc_risk_releases_total",
    "Release calls, by outcome (released, replayed, tombstone, refused, invalid)",
    ["outcome"],
)
RESERVATIONS_EXPIRED = Counter(
    "otc_risk_reservations_expired_total",
    "FROZEN reservations released after their deadline, by the sweeper or a late Commit",
)
SETTLEMENTS = Counter(
    "otc_risk_settlements_total",
    "Committed reservations whose trade settled or failed to settle, by outcome (settled, "
    "settlement_failed, replayed, duplicate, unknown, refused, not_found, invalid)",
    ["outcome"],
)
