"""What a trader's WebSocket is told beyond quotes and states: a maker taking its
quote back, and the live reference prices it subscribed to."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx

from otc.auth import Role
from otc.ids import new_id
from stack.client import TraderClient
from stack.infra.platform import Platform
from tests.e2e_helpers import base_url, token_for


async def test_a_killed_makers_quote_is_withdrawn_on_the_traders_socket(
    platform: Platform,
) -> None:
    gateway = f"http://127.0.0.1:{platform.mm_http_port}"
    maker = {"Authorization": f"Bearer {token_for(platform, 'MM-2', Role.MARKET_MAKER)}"}
    async with (
        TraderClient(base_url(platform), token_for(platform, "TRADER-A")) as trader,
        httpx.AsyncClient(base_url=gateway, timeout=15) as http,
    ):
        rfq = await trader.create_rfq(
            client_rfq_id=new_id(),
            instrument="BTC-USD",
            side="buy",
            quantity="1",
            counterparties=["MM-2"],
        )
        rfq_id = rfq["rfq_id"]
        [quote] = await trader.wait_quotes(rfq_id, 1)
        try:
            killed = await http.post("/v1/mm/kill", json={}, headers=maker)
            assert killed.status_code == 200, killed.text
            track = trader.tracks[rfq_id]
            await trader.wait_until(rfq_id, lambda: quote["quote_id"] in track.withdrawn, 15)
        finally:
            reset = await http.post("/v1/mm/reset", json={}, headers=maker)
            assert reset.status_code == 200, reset.text
        assert track.live_quotes() == []
        status, answer = await trader.accept(rfq_id, quote["quote_id"])
        assert status == 409
        assert answer["error"]["code"] == "quote_withdrawn"
        read = await trader.get_rfq(rfq_id)
        assert read["quotes"][0]["withdrawn_reason"]


async def test_a_subscribed_trader_receives_live_reference_prices(platform: Platform) -> None:
    async with TraderClient(base_url(platform), token_for(platform, "TRADER-B")) as trader:
        assert await trader.subscribe_prices("EUR-USD", "BTC-USD") == ["BTC-USD", "EUR-USD"]
        async with asyncio.timeout(15):
            while not {"EUR-USD", "BTC-USD"} <= set(trader.prices):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    assert set(trader.prices) == {"EUR-USD", "BTC-USD"}, "nothing unsubscribed arrives"
    assert Decimal(trader.prices["BTC-USD"]["mid"]) > 0
