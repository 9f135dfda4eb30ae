"""order_core's handlers in-process, on the real PostgreSQL, Valkey and
risk_limits of the running test platform: for races driven without Kafka timing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from redis.asyncio import Redis

from order_core.adapters.risk_client import RiskClient
from order_core.service_layer.transaction import Dependencies
from otc.clock import SystemClock
from otc.db import make_engine
from otc.quote_book import QuoteBook
from stack.infra.platform import Platform
from tests.order_core.makers import new_maker


@pytest.fixture(scope="session")
async def core(platform: Platform) -> AsyncIterator[Dependencies]:
    assert platform.endpoints is not None
    engine = make_engine(platform.endpoints.database_url, pool_size=25)
    redis = Redis.from_url(platform.endpoints.redis_url)
    risk = RiskClient(f"127.0.0.1:{platform.risk_port}", timeout_s=10.0)
    yield Dependencies(
        engine=engine,
        quotes=QuoteBook(redis),
        risk=risk,
        clock=SystemClock(),
        last_look_window=timedelta(seconds=30),
        reservation_ttl=timedelta(seconds=60),
    )
    await risk.close()
    await redis.aclose()
    await engine.dispose()


@pytest.fixture(scope="module")
async def maker(platform: Platform) -> str:
    return await new_maker(platform)
