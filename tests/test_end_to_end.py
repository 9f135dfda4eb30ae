"""One RFQ from request to settlement through every service, as separate processes
on real Kafka, PostgreSQL and Redis; and what must not happen on the way."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import asyncpg
import pytest
from rich.console import Console

from otc.ids import new_id
from stack.client import TraderClient
from stack.demo import best_quote, run_demo
from stack.infra.platform import Platform
from tests.e2e_helpers import TEST_QUOTE_TTL_MS, base_url, token_for


async def _fetch(platform: Platform, query: str, *args: object) -> list[asyncpg.Record]:
    assert platform.endpoints is not None
    conn = await asyncpg.connect(platform.endpoints.database_url)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


async def test_an_rfq_goes_from_request_to_settled(platform: Platform) -> None:
    async with TraderClient(base_url(platform), token_for(platform, "TRADER-A")) as trader:
        rfq = await trader.create_rfq(
            client_rfq_id=new_id(), instrument="ETH-USD", side="buy", quantity="3"
        )
        rfq_id = rfq["rfq_id"]
        assert rfq["status"] == "RFQ_SENT"
        quotes = await trader.wait_quotes(rfq_id, count=3)
        assert {q["maker"] for q in quotes} == {"MM-1", "MM-2", "MM-3"}
        chosen = best_quote(quotes, "buy")

        status, body = await trader.accept(rfq_id, chosen["quote_id"])
        assert status == 200, body
        assert body["status"] == "PENDING_CONFIRMATION"
        assert (
            await trader.wait_status(rfq_id, "SETTLED", "SETTLEMENT_FAILED", timeout=20)
            == "SETTLED"
        )

        seen = [s["status"] for s in trader.tracks[rfq_id].states]
        assert seen == ["RFQ_SENT", "QUOTED", "PENDING_CONFIRMATION", "CONFIRMED", "SETTLED"]
        final = await trader.get_rfq(rfq_id)

    price = Decimal(chosen["offer_px"])
    assert final["status"] == "SETTLED"
    assert Decimal(final["price"]) == price
    [order] = await _fetch(platform, "SELECT * FROM order_core.orders WHERE rfq_id = $1", rfq_id)
    # created at 1; each quote, the accept, the confirm and the settle bump it once
    assert order["state"] == "SETTLED"
    assert order["version"] == 1 + len(quotes) + 3
    [reservation] = await _fetch(
        platform, "SELECT * FROM risk.reservations WHERE rfq_id = $1", rfq_id
    )
    # committed at the confirm, then settled (its exposure freed) once settlement booked it
    assert reservation["status"] in ("COMMITTED", "SETTLED")
    entries = await _fetch(
        platform,
        "SELECT party, asset, amount FROM settlement.ledger_entries WHERE trade_id = $1",
        final["trade_id"],
    )
    booked = {(e["party"], e["asset"]): e["amount"] for e in entries}
    assert booked == {
        ("TRADER-A", "ETH"): Decimal("3"),
        (chosen["maker"], "ETH"): Decimal("-3"),
        ("TRADER-A", "USD"): -3 * price,
        (chosen["maker"], "USD"): 3 * price,
    }


async def test_an_accept_after_the_quote_expired_is_refused_and_freezes_nothing(
    platform: Platform,
) -> None:
    async with TraderClient(base_url(platform), token_for(platform, "TRADER-B")) as trader:
        rfq = await trader.create_rfq(
            client_rfq_id=new_id(),
            instrument="BTC-USD",
            side="sell",
            quantity="1",
            counterparties=["MM-1"],
            response_window_ms=60_000,
        )
        [quote] = await trader.wait_quotes(rfq["rfq_id"], count=1)
        await asyncio.sleep(TEST_QUOTE_TTL_MS / 1000 + 0.5)
        status, body = await trader.accept(rfq["rfq_id"], quote["quote_id"])

    assert status == 409, body
    assert body["error"]["code"] == "quote_expired"
    assert "expired" in body["error"]["message"]
    frozen = await _fetch(
        platform, "SELECT * FROM risk.reservations WHERE rfq_id = $1", rfq["rfq_id"]
    )
    assert frozen == []
    [order] = await _fetch(
        platform, "SELECT state FROM order_core.orders WHERE rfq_id = $1", rfq["rfq_id"]
    )
    assert order["state"] == "QUOTED"


async def test_one_quote_is_accepted_at_most_once(platform: Platform) -> None:
    async with TraderClient(base_url(platform), token_for(platform, "TRADER-A")) as trader:
        rfq = await trader.create_rfq(
            client_rfq_id=new_id(),
            instrument="EUR-USD",
            side="buy",
            quantity="1000000",
            counterparties=["MM-2"],
        )
        [quote] = await trader.wait_quotes(rfq["rfq_id"], count=1)
        answers = await asyncio.gather(
            *(trader.accept(rfq["rfq_id"], quote["quote_id"]) for _ in range(5))
        )
    statuses = sorted(status for status, _ in answers)
    assert statuses.count(200) == 1, answers
    assert all(s == 409 for s in statuses if s != 200), answers
    reservations = await _fetch(
        platform, "SELECT status FROM risk.reservations WHERE rfq_id = $1", rfq["rfq_id"]
    )
    live = ("FROZEN", "COMMITTED", "SETTLED")
    assert len([r for r in reservations if r["status"] in live]) == 1


async def test_otc_demo_ends_in_settled(platform: Platform) -> None:
    console = Console(record=True, width=200)
    done = await run_demo(base_url(platform), token_for(platform, "TRADER-A"), console=console)
    assert done["status"] == "SETTLED"
    printed = console.export_text()
    for step in ("RFQ sent", "first quote", "accepted", "confirmed", "SETTLED"):
        assert step in printed


@pytest.mark.parametrize("service", ["order-core", "settlement", "rfq-service"])
async def test_every_service_exposes_health_and_metrics(platform: Platform, service: str) -> None:
    import httpx

    port = platform.specs[service].ops_port
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 200
        metrics = (await client.get("/metrics")).text
    assert "otc_messages_consumed_total" in metrics
