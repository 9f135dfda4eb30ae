"""order_core's Prometheus metrics, beside the shared ones in `otc.metrics`.

State changes are counted from what a unit of work committed (not from what a
handler attempted), so a rolled-back or retried transaction counts once.
"""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf.message import Message as ProtoMessage
from prometheus_client import Counter, Histogram

from order_core.domain.lifecycle import TRANSITIONS, OrderState
from otc.contracts import events_pb2 as ev

RFQ_RECORDED = "RfqRequested"  # the event of an order's first state, RFQ_SENT

RFQS = Counter("otc_rfqs_total", "RFQs order_core opened an order for")
ORDER_TRANSITIONS = Counter(
    "otc_order_transitions_total",
    "Committed order state changes, by the state reached and the event that led there",
    ["state", "event"],
)
ACCEPTS = Counter(
    "otc_accepts_total",
    "Accepts order_core answered, by outcome: `accepted`, or the refusal's code "
    "(quote_expired, quote_taken, insufficient_credit, wrong_state, ...)",
    ["outcome"],
)
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
RFQ_TO_FIRST_QUOTE = Histogram(
    "otc_rfq_first_quote_seconds",
    "From order_core recording an RFQ to recording its first quote",
    buckets=_LATENCY_BUCKETS,
)
ACCEPT_TO_CONFIRMED = Histogram(
    "otc_accept_confirmed_seconds",
    "From order_core accepting a quote (credit frozen, last look asked) to the order CONFIRMED",
    buckets=_LATENCY_BUCKETS,
)

# every legal (state, event) pair starts at zero, so a rate() has a baseline
ORDER_TRANSITIONS.labels(OrderState.RFQ_SENT.value, RFQ_RECORDED)
for _t in TRANSITIONS:
    ORDER_TRANSITIONS.labels(_t.dest.value, _t.event.value)
ACCEPTS.labels("accepted")


def count_committed(sent: Iterable[ProtoMessage]) -> None:
    """Counts the state changes among the payloads a transaction just committed."""
    for payload in sent:
        if isinstance(payload, ev.OrderStateChanged):
            ORDER_TRANSITIONS.labels(payload.state, payload.event).inc()
            if payload.event == RFQ_RECORDED:
                RFQS.inc()
