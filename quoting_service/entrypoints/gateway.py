"""The market-maker gateway as a `Service`: the bots' WebSocket and the kill switch
API on `OTC_MM_HTTP_PORT`, the feed that reads every partition for them, and the
reference prices its guards check quotes against.

Stopping closes the bots' connections first, so each one's cancel-on-disconnect
withdrawals are published before the producer stops.
"""

from __future__ import annotations

import asyncio

import uvicorn
from redis.asyncio import Redis

from otc.bus.consumer import Consumer
from otc.bus.producer import Publisher
from quoting_service.adapters.market_data import MarketData


class MmGateway:
    name = "mm-gateway"
    has_own_http = True  # /healthz, /readyz and /metrics beside the API

    def __init__(
        self,
        *,
        server: uvicorn.Server,
        feed: Consumer,
        market: MarketData,
        publisher: Publisher,
        redis: Redis,
    ) -> None:
        self._server = server
        self._feed = feed
        self._market = market
        self._publisher = publisher
        self._redis = redis
        self._draining = False

    async def start(self) -> None:
        await self._publisher.start()
        await self._market.start()
        await self._feed.start()

    def ready(self) -> bool:
        return not self._draining and self._market.started and self._feed.ready

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._server.serve())
            group.create_task(self._feed.run())
            group.create_task(self._market.run())

    async def stop(self) -> None:
        self._draining = True
        self._server.should_exit = True
        await self._feed.stop()
        await self._market.stop()

    async def close(self) -> None:
        await self._feed.close()
        await self._market.close()
        await self._publisher.stop()
        await self._redis.aclose()
