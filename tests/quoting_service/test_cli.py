"""`otc quoter kill / status / reset` as an operator runs them: a separate process
that withdraws every live quote of the maker from the real Redis, publishes each
withdrawal on the real Kafka, and halts the maker until reset."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from otc.bus.topics import RFQ_QUOTES
from otc.contracts import events_pb2
from otc.quote_book import PutOutcome, QuoteBook, StoredQuote, TakeOutcome
from stack.infra.provider import Endpoints
from tests.kafka_tap import KafkaTap, Seen


@pytest.fixture
async def book(endpoints: Endpoints) -> AsyncIterator[QuoteBook]:
    redis = Redis.from_url(endpoints.redis_url)
    yield QuoteBook(redis)
    await redis.aclose()


async def otc(endpoints: Endpoints, *args: str) -> str:
    env = dict(os.environ)
    env.update(
        {"OTC_REDIS_URL": endpoints.redis_url, "OTC_KAFKA_BOOTSTRAP": endpoints.kafka_bootstrap}
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "stack.cli",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode == 0, output.decode()
    return output.decode()


def quote(maker: str) -> StoredQuote:
    rfq_id = str(uuid.uuid4())
    valid_ms = int(time.time() * 1000) + 30_000
    return StoredQuote(rfq_id, str(uuid.uuid4()), maker, "BTC-USD", "", "65010", "1", valid_ms)


async def test_the_kill_switch_command_withdraws_every_live_quote_and_halts(
    endpoints: Endpoints, book: QuoteBook
) -> None:
    maker = f"MM-K-{uuid.uuid4().hex[:8]}"
    quotes = [quote(maker) for _ in range(3)]
    for each in quotes:
        await book.put(each)
    async with KafkaTap(endpoints.kafka_bootstrap, RFQ_QUOTES) as tap:
        printed = await otc(endpoints, "quoter", "kill", "--maker", maker)
        assert f"{maker} halted: 3 live quote(s) withdrawn" in printed

        def withdrawn(seen: Seen) -> bool:
            payload = seen.message.payload if seen.message is not None else None
            return isinstance(payload, events_pb2.QuoteWithdrawn) and payload.maker == maker

        seen = await tap.wait_for(withdrawn, count=3)
    assert {s.message.payload.quote_id for s in seen if s.message} == {q.quote_id for q in quotes}
    for each in quotes:
        taken, _ = await book.take(each.rfq_id, each.quote_id, taker="late", maker=maker)
        assert taken is TakeOutcome.WITHDRAWN
    assert "halted (kill switch" in await otc(endpoints, "quoter", "status", "--maker", maker)
    assert (await book.put(quote(maker))).outcome is PutOutcome.HALTED

    assert "may quote again" in await otc(endpoints, "quoter", "reset", "--maker", maker)
    assert (await book.put(quote(maker))).outcome is PutOutcome.STORED
