"""Settlement's own Prometheus metrics, beside the shared ones of `otc.metrics`."""

from __future__ import annotations

from prometheus_client import Counter

TRADES_BOOKED = Counter(
    "otc_settlement_trades_total",
    "Confirmed trades handled by settlement, by outcome (settled, failed, duplicate)",
    ["outcome"],
)
