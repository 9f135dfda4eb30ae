"""Every service's Prometheus `/metrics` on the running platform: one RFQ from
request to settlement moves what it must (RFQs, quotes, transitions by state,
accept outcomes, both latency histograms, freezes, settlement outcomes, outbox
publishing), and the gauges and counters an operator alerts on are there from
the start (consumer lag per partition, DLQ counts per topic, outbox lag)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

import httpx
from prometheus_client.parser import text_string_to_metric_families

from otc.bus import topics
from otc.ids import new_id
from stack.client import TraderClient
from stack.demo import best_quote
from stack.infra.platform import Platform
from tests.e2e_helpers import base_url, token_for

Labels = frozenset[tuple[str, str]]
Scrape = dict[tuple[str, Labels], float]

QUOTERS = ("quoter-MM-1", "quoter-MM-2", "quoter-MM-3")
CONSUMED = {
    "order-core": {
        topics.RFQ_QUOTES,
        topics.ORDER_COMMANDS,
        topics.LASTLOOK_RESPONSES,
        topics.SETTLEMENT_EVENTS,
    },
    "rfq-service": {topics.ORDER_EVENTS, topics.MARKET_PRICES},
    "mm-gateway": {topics.RFQ_REQUESTS, topics.LASTLOOK_REQUESTS, topics.RFQ_QUOTES},
    "risk-limits": {topics.SETTLEMENT_EVENTS},
    "settlement": {topics.TRADE_CONFIRMED},
    **{q: {topics.RFQ_REQUESTS, topics.LASTLOOK_REQUESTS} for q in QUOTERS},
}
WITH_OUTBOX = ("order-core", "rfq-service", "settlement")

# (services whose sum must grow, sample, labels it must carry)
MOVED: list[tuple[tuple[str, ...], str, dict[str, str]]] = [
    (("order-core",), "otc_rfqs_total", {}),
    *(
        (("order-core",), "otc_order_transitions_total", {"state": state})
        for state in ("RFQ_SENT", "QUOTED", "PENDING_CONFIRMATION", "CONFIRMED", "SETTLED")
    ),
    (("order-core",), "otc_accepts_total", {"outcome": "accepted"}),
    (("order-core",), "otc_rfq_first_quote_seconds_count", {}),
    (("order-core",), "otc_accept_confirmed_seconds_count", {}),
    *(((s,), "otc_outbox_published_total", {}) for s in WITH_OUTBOX),
    *(((q,), "otc_quotes_submitted_total", {}) for q in QUOTERS),
    (QUOTERS, "otc_last_looks_total", {}),  # only the accepted maker's moves
    (QUOTERS, "otc_quote_seconds_count", {}),
    (("risk-limits",), "otc_risk_freezes_total", {"outcome": "frozen"}),
    (("risk-limits",), "otc_risk_commits_total", {}),
    (("risk-limits",), "otc_risk_settlements_total", {}),
    (("settlement",), "otc_settlement_trades_total", {"outcome": "settled"}),
    (("order-core",), "otc_messages_consumed_total", {"topic": topics.SETTLEMENT_EVENTS}),
]
SETTLE_WAIT_S = 30.0


async def _scrape(client: httpx.AsyncClient, port: int) -> Scrape:
    response = await client.get(f"http://127.0.0.1:{port}/metrics")
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


async def _scrape_all(platform: Platform) -> dict[str, Scrape]:
    async with httpx.AsyncClient(timeout=5) as client:
        names = list(platform.specs)
        scrapes = await asyncio.gather(
            *(_scrape(client, platform.specs[name].ops_port) for name in names)
        )
    return dict(zip(names, scrapes, strict=True))


def _sum(scrape: Scrape, name: str, labels: dict[str, str]) -> float:
    wanted = set(labels.items())
    return sum(v for (n, have), v in scrape.items() if n == name and wanted <= have)


def _not_moved(before: dict[str, Scrape], after: dict[str, Scrape]) -> list[str]:
    def total(
        scrapes: dict[str, Scrape], services: Iterable[str], name: str, labels: dict[str, str]
    ) -> float:
        return sum(_sum(scrapes[s], name, labels) for s in services)

    return [
        f"{'/'.join(services)} {name}{labels or ''}"
        for services, name, labels in MOVED
        if total(after, services, name, labels) <= total(before, services, name, labels)
    ]


def _topics(scrape: Scrape, name: str) -> set[str]:
    return {dict(labels)["topic"] for (n, labels), _ in scrape.items() if n == name}


async def _one_settled_rfq(platform: Platform) -> None:
    async with TraderClient(base_url(platform), token_for(platform, "TRADER-B")) as trader:
        rfq = await trader.create_rfq(
            client_rfq_id=new_id(), instrument="BTC-USD", side="buy", quantity="0.5"
        )
        rfq_id = rfq["rfq_id"]
        quotes = await trader.wait_quotes(rfq_id, count=3, timeout=20)
        status, body = await trader.accept(rfq_id, best_quote(quotes, "buy")["quote_id"])
        assert status == 200, body
        assert await trader.wait_status(rfq_id, "SETTLED", "SETTLEMENT_FAILED", timeout=20) == (
            "SETTLED"
        )


async def test_one_lifecycle_moves_every_required_metric(platform: Platform) -> None:
    before = await _scrape_all(platform)
    await _one_settled_rfq(platform)

    # risk_limits and the counters behind it hear of the settlement a little later
    deadline = time.monotonic() + SETTLE_WAIT_S
    while _not_moved(before, after := await _scrape_all(platform)):
        assert time.monotonic() < deadline, f"did not move: {_not_moved(before, after)}"
        await asyncio.sleep(0.2)


async def test_every_consumer_reports_its_lag_and_dead_letters_per_topic(
    platform: Platform,
) -> None:
    scrapes = await _scrape_all(platform)
    for service, consumed in CONSUMED.items():
        scrape = scrapes[service]
        assert _topics(scrape, "otc_dlq_messages_total") >= consumed, service
        lagging = {
            (dict(labels)["topic"], dict(labels)["partition"])
            for (name, labels), value in scrape.items()
            if name == "otc_consumer_lag_messages" and value >= 0
        }
        partitions = platform.settings.kafka_partitions
        for topic in consumed:
            assert {p for t, p in lagging if t == topic} == {str(p) for p in range(partitions)}, (
                service,
                topic,
            )
    for service in WITH_OUTBOX:
        assert ("otc_outbox_lag_seconds", frozenset({("service", service)})) in scrapes[service]
    assert any(name.startswith("process_") for name, _ in scrapes["price-feed"])
