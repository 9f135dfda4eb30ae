"""One maker's quoter as a `Service`: the RFQ and last-look consumer, the
reference-price reader and the connections they share, started and stopped together."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from otc.bus.consumer import Consumer
from otc.bus.producer import Publisher
from quoting_service.adapters.market_data import MarketData
from quoting_service.service_layer.handlers import Deps


class Quoter:
    def __init__(
        self,
        *,
        name: str,
        deps: Deps,
        consumer: Consumer,
        market: MarketData,
        publisher: Publisher,
        redis: Redis,
    ) -> None:
        self.name = name
        self.deps = deps
        self._consumer = consumer
        self._market = market
        self._publisher = publisher
        self._redis = redis

    async def start(self) -> None:
        await self._publisher.start()
        await self._market.start()
        await self._consumer.start()

    def ready(self) -> bool:
        return self._market.started and self._consumer.ready

    async def run(self) -> None:
        # a TaskGroup, so that if one loop dies the other is cancelled and the
        # service exits instead of quoting on stale prices or not quoting at all
        async with asyncio.TaskGroup() as group:
            group.create_task(self._consumer.run())
            group.create_task(self._market.run())

    async def stop(self) -> None:
        await self._consumer.stop()
        await self._market.stop()

    async def close(self) -> None:
        await self._consumer.close()
        await self._market.close()
        await self._publisher.stop()
        await self._redis.aclose()
