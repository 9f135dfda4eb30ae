"""The shared Redis quote book on a real Valkey server: one quote is taken at most
once, never comes back after it was taken, and expires with its validity."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from otc.ids import new_id
from otc.infra.platform import Endpoints
from otc.quote_book import PutOutcome, QuoteBook, StoredQuote, TakeOutcome, quote_key


@pytest.fixture
async def book(endpoints: Endpoints) -> AsyncIterator[QuoteBook]:
    redis = Redis.from_url(endpoints.redis_url)
    yield QuoteBook(redis)
    await redis.aclose()


def _quote(rfq_id: str, quote_id: str | None = None, *, ttl_ms: int = 5000) -> StoredQuote:
    return StoredQuote(
        rfq_id=rfq_id,
        quote_id=quote_id or new_id(),
        maker="MM-1",
        instrument="BTC-USD",
        bid_px="",
        offer_px="65000.01",
        quantity="1",
        valid_until_ms=int(time.time() * 1000) + ttl_ms,
    )


async def test_a_quote_is_taken_once_and_the_same_taker_gets_it_again(book: QuoteBook) -> None:
    quote = _quote(new_id())
    assert (await book.put(quote)).outcome is PutOutcome.STORED
    assert await book.take(quote.rfq_id, quote.quote_id, "cmd-1") == (TakeOutcome.TAKEN, quote)
    assert await book.take(quote.rfq_id, quote.quote_id, "cmd-1") == (TakeOutcome.TAKEN, quote)
    assert await book.take(quote.rfq_id, quote.quote_id, "cmd-2") == (
        TakeOutcome.ALREADY_TAKEN,
        None,
    )


async def test_a_taken_quote_is_never_stored_again(book: QuoteBook) -> None:
    quote = _quote(new_id())
    await book.put(quote)
    await book.take(quote.rfq_id, quote.quote_id, "cmd-1")
    again = await book.put(quote)
    assert again.outcome is PutOutcome.TAKEN
    assert await book.take(quote.rfq_id, quote.quote_id, "cmd-2") == (
        TakeOutcome.ALREADY_TAKEN,
        None,
    )


async def test_putting_a_live_quote_id_again_keeps_the_first(book: QuoteBook) -> None:
    first = _quote(new_id())
    await book.put(first)
    repriced = _quote(first.rfq_id, first.quote_id, ttl_ms=9000)
    result = await book.put(repriced)
    assert result.outcome is PutOutcome.EXISTS
    assert result.quote == first


async def test_a_new_quote_from_the_same_maker_supersedes_the_old(book: QuoteBook) -> None:
    rfq_id = new_id()
    old, new = _quote(rfq_id), _quote(rfq_id)
    await book.put(old)
    result = await book.put(new)
    assert result.replaced == old.quote_id
    assert await book.take(rfq_id, old.quote_id, "cmd") == (TakeOutcome.MISSING, None)
    assert (await book.take(rfq_id, new.quote_id, "cmd"))[0] is TakeOutcome.TAKEN


async def test_a_quote_expires_at_its_valid_until(book: QuoteBook, endpoints: Endpoints) -> None:
    quote = _quote(new_id(), ttl_ms=300)
    await book.put(quote)
    redis = Redis.from_url(endpoints.redis_url)
    try:
        assert 0 < await redis.pttl(quote_key(quote.rfq_id, quote.quote_id)) <= 300
    finally:
        await redis.aclose()
    await asyncio.sleep(0.4)
    assert await book.take(quote.rfq_id, quote.quote_id, "cmd") == (TakeOutcome.MISSING, None)


async def test_fifty_racing_accepts_take_a_quote_exactly_once(book: QuoteBook) -> None:
    quote = _quote(new_id())
    await book.put(quote)
    outcomes = await asyncio.gather(
        *(book.take(quote.rfq_id, quote.quote_id, f"cmd-{i}") for i in range(50))
    )
    assert [o for o, _ in outcomes].count(TakeOutcome.TAKEN) == 1
    assert [o for o, _ in outcomes].count(TakeOutcome.ALREADY_TAKEN) == 49
