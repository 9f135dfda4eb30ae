"""kill -9 of order_core while RFQs are in flight, then a restart: every order
still reaches its end, and no credit stays frozen."""

from __future__ import annotations

import asyncio

from otc.client import TraderClient
from otc.demo import best_quote
from otc.ids import new_id
from otc.infra.platform import Platform
from tests.e2e_helpers import base_url, token_for


async def _lifecycle(trader: TraderClient) -> tuple[str, bool]:
    """Returns the RFQ and whether its accept was taken (a quote may expire while
    order_core is down: then the accept is refused, which is also fine)."""
    rfq = await trader.create_rfq(
        client_rfq_id=new_id(),
        instrument="ETH-USD",
        side="buy",
        quantity="1",
        response_window_ms=120_000,
    )
    rfq_id = rfq["rfq_id"]
    quotes = await trader.wait_quotes(rfq_id, count=1, timeout=60)
    status, body = await trader.accept(rfq_id, best_quote(quotes, "buy")["quote_id"])
    if status == 409:
        assert body["error"]["code"] == "quote_expired", body
    else:
        assert status in (200, 202), body
    return rfq_id, status != 409


async def test_order_core_killed_mid_flight_recovers_every_order(platform: Platform) -> None:
    assert platform.endpoints is not None
    async with TraderClient(base_url(platform), token_for(platform, "TRADER-A")) as trader:
        flights = [asyncio.create_task(_lifecycle(trader)) for _ in range(6)]
        await asyncio.sleep(0.4)  # some RFQs are quoted, some accepted, some not yet seen
        platform.children["order-core"].kill()
        await platform.restart("order-core", timeout=90)
        outcomes = dict(await asyncio.gather(*flights))
        for rfq_id, accepted in outcomes.items():
            if accepted:
                await trader.wait_status(rfq_id, "SETTLED", timeout=60)
    states = await _states(platform, list(outcomes))
    assert all(states[r] == "SETTLED" for r, accepted in outcomes.items() if accepted), states
    assert all(states[r] == "QUOTED" for r, accepted in outcomes.items() if not accepted), states
    assert await _frozen(platform, list(outcomes)) == [], "no credit may stay frozen"


async def _states(platform: Platform, rfq_ids: list[str]) -> dict[str, str]:
    import asyncpg

    assert platform.endpoints is not None
    conn = await asyncpg.connect(platform.endpoints.database_url)
    try:
        found = await conn.fetch(
            "SELECT rfq_id, state FROM order_core.orders WHERE rfq_id = ANY($1)", rfq_ids
        )
    finally:
        await conn.close()
    return {r["rfq_id"]: r["state"] for r in found}


async def _frozen(platform: Platform, rfq_ids: list[str]) -> list[str]:
    import asyncpg

    assert platform.endpoints is not None
    conn = await asyncpg.connect(platform.endpoints.database_url)
    try:
        found = await conn.fetch(
            "SELECT rfq_id FROM risk.reservations WHERE rfq_id = ANY($1) AND status = 'FROZEN'",
            rfq_ids,
        )
    finally:
        await conn.close()
    return [r["rfq_id"] for r in found]
