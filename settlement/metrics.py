"""Settlement's own Prometheus metrics, beside the shared ones of `otc.metrics`."""

from __future__ import annotations

from prometheus_client import Counter

TRADES_BOOKED = Counter(
    "otc_settlement_trades_total",
    "Confirmed trades received by settlement, by what their booking did "
    "(settled, retrying, failed, scheduled for a value date, duplicate)",
    ["outcome"],
)
SETTLEMENT_ATTEMPTS = Counter(
    "otc_settlement_attempts_total",
    "Attempts to settle an instruction, by outcome (settled, retrying, failed)",
    ["outcome"],
)
EOD_BREAKS = Counter(
    "otc_eod_breaks_total", "Reconciliation breaks the end-of-day batch found, by check", ["check"]
)
