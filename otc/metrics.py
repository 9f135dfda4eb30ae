"""Prometheus metrics shared by every service; each service adds its own beside them
(`order_core.metrics`, `quoting_service.metrics`, `risk_limits.metrics`,
`settlement.metrics`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES_CONSUMED = Counter(
    "otc_messages_consumed_total",
    "Kafka messages handled, by topic and outcome",
    ["service", "topic", "outcome"],
)
DLQ_MESSAGES = Counter(
    "otc_dlq_messages_total", "Messages sent to a dead-letter topic", ["service", "topic"]
)
HANDLER_SECONDS = Histogram(
    "otc_handler_seconds",
    "Time to handle one Kafka message",
    ["service", "topic"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
OUTBOX_PUBLISHED = Counter(
    "otc_outbox_published_total", "Outbox rows published to Kafka", ["service"]
)
OUTBOX_LAG = Gauge(
    "otc_outbox_lag_seconds", "Age of the oldest unsent outbox row when last looked", ["service"]
)
CONSUMER_LAG = Gauge(
    "otc_consumer_lag_messages",
    "Records of a partition this consumer has not handled yet (high watermark minus the "
    "next offset to handle); `group` is empty for a consumer reading every partition",
    ["service", "group", "topic", "partition"],
)
