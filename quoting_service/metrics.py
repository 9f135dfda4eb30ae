"""The quoter's Prometheus metrics, beside the shared ones in `otc.metrics`."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

QUOTES_SUBMITTED = Counter("otc_quotes_submitted_total", "Quotes stored and published", ["maker"])
LAST_LOOKS = Counter("otc_last_looks_total", "Last-look answers, by outcome", ["maker", "outcome"])
QUOTE_SECONDS = Histogram(
    "otc_quote_seconds",
    "Time from receiving an RFQ to publishing its quote",
    ["maker"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)
