"""On the whole running platform: the requester of an anonymous RFQ reaches no
maker, neither on the topics makers read (`rfq.requests`, `lastlook.requests`,
envelope included) nor in any message the gateway sends a bot, from the RFQ to
the last look on its accepted quote."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import websockets

from otc.auth import Role
from otc.bus.topics import LASTLOOK_REQUESTS, RFQ_REQUESTS
from stack.client import TraderClient
from stack.infra.platform import Platform
from tests.e2e_helpers import base_url, token_for
from tests.kafka_tap import KafkaTap, Seen

TRADER = "TRADER-A"
MAKER = "MM-1"


class Listener:
    """A bot that only listens (and keeps its connection alive)."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.raw: list[str] = []
        self.changed = asyncio.Event()

    async def run(self) -> None:
        async def beat() -> None:
            while True:
                await self.ws.send(json.dumps({"type": "heartbeat"}))
                await asyncio.sleep(1)

        heartbeat = asyncio.create_task(beat())
        try:
            async for raw in self.ws:
                self.raw.append(raw)
                self.changed.set()
        except websockets.ConnectionClosed:
            pass
        finally:
            heartbeat.cancel()

    async def wait_for(self, predicate: Callable[[dict[str, Any]], bool]) -> None:
        async with asyncio.timeout(20):
            while not any(predicate(json.loads(raw)) for raw in self.raw):
                self.changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), 0.5)


@contextlib.asynccontextmanager
async def listening(platform: Platform) -> AsyncIterator[Listener]:
    url = f"ws://127.0.0.1:{platform.mm_http_port}/v1/mm/ws?cancel_on_disconnect=false"
    headers = {"Authorization": f"Bearer {token_for(platform, MAKER, Role.MARKET_MAKER)}"}
    async with websockets.connect(url, additional_headers=headers) as ws:
        listener = Listener(ws)
        task = asyncio.create_task(listener.run())
        try:
            await listener.wait_for(lambda m: m["type"] == "welcome")
            yield listener
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def about(rfq_id: str) -> Callable[[Seen], bool]:
    return lambda seen: seen.raw is not None and rfq_id.encode() in seen.raw


async def test_no_message_a_maker_receives_names_the_requester_of_an_anonymous_rfq(
    platform: Platform,
) -> None:
    assert platform.endpoints is not None
    async with (
        KafkaTap(platform.endpoints.kafka_bootstrap, RFQ_REQUESTS, LASTLOOK_REQUESTS) as tap,
        listening(platform) as bot,
        TraderClient(base_url(platform), token_for(platform, TRADER)) as trader,
    ):
        rfq = await trader.create_rfq(
            client_rfq_id=f"anon-{uuid.uuid4()}",
            instrument="BTC-USD",
            side="buy",
            quantity="0.1",
            counterparties=[MAKER],
            anonymous=True,
        )
        rfq_id = rfq["rfq_id"]
        await bot.wait_for(lambda m: m["type"] == "rfq" and m["data"]["rfq_id"] == rfq_id)
        [quote] = await trader.wait_quotes(rfq_id, 1)
        status, body = await trader.accept(rfq_id, quote["quote_id"])
        assert status in (200, 202), body
        await bot.wait_for(lambda m: m["type"] == "last_look" and m["data"]["rfq_id"] == rfq_id)

        requests = await tap.wait_for(lambda s: s.topic == RFQ_REQUESTS and about(rfq_id)(s))
        looks = await tap.wait_for(lambda s: s.topic == LASTLOOK_REQUESTS and about(rfq_id)(s))
        for seen in requests + looks:
            assert seen.raw is not None
            assert TRADER.encode() not in seen.raw, seen.topic
        sent = [raw for raw in bot.raw if rfq_id in raw]
        assert len(sent) >= 2  # the RFQ and the last look at least
        assert not [raw for raw in sent if TRADER in raw]
