"""The quoter's Prometheus metrics, beside the shared ones in `otc.metrics`."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

QUOTES_SUBMITTED = Counter("otc_quotes_submitted_total", "Quotes stored and published", ["maker"])
QUOTES_REFUSED = Counter(
    "otc_quotes_refused_total",
    "Quotes refused before they were stored, by reason",
    ["maker", "code"],
)
QUOTES_WITHDRAWN = Counter(
    "otc_quotes_withdrawn_total", "Quotes withdrawn, by who or what withdrew them", ["maker", "why"]
)
MAKERS_HALTED = Counter(
    "otc_makers_halted_total", "Makers halted by protection or a kill switch", ["maker", "why"]
)
LAST_LOOKS = Counter("otc_last_looks_total", "Last-look answers, by outcome", ["maker", "outcome"])
QUOTE_SECONDS = Histogram(
    "otc_quote_seconds",
    "Time from receiving an RFQ to publishing its quote",
    ["maker"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)
BOTS_CONNECTED = Gauge("otc_mm_bots_connected", "Bots connected to this gateway", ["maker"])
