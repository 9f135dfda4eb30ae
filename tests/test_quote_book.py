"""The shared Redis quote book on a real Valkey server: a quote is taken at most
once, replaced or withdrawn only by its maker, never comes back once it is gone,
and a refused take says why. Races are run, not reasoned about."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from otc.ids import new_id
from otc.quote_book import (
    ChangeOutcome,
    Fate,
    PutOutcome,
    QuoteBook,
    StoredQuote,
    TakeOutcome,
    live_key,
    quote_key,
)
from stack.infra.provider import Endpoints

ROUNDS = 40  # two calls a round, all at once: under the client's 100 connections


@pytest.fixture
async def redis(endpoints: Endpoints) -> AsyncIterator[Redis]:
    client = Redis.from_url(endpoints.redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def book(redis: Redis) -> QuoteBook:
    return QuoteBook(redis)


def _maker() -> str:
    return f"MM-Q-{new_id()[-8:]}"  # a maker of its own: its index holds only this test's quotes


def _quote(
    rfq_id: str, quote_id: str | None = None, *, maker: str = "MM-1", ttl_ms: int = 5000
) -> StoredQuote:
    return StoredQuote(
        rfq_id=rfq_id,
        quote_id=quote_id or new_id(),
        maker=maker,
        instrument="BTC-USD",
        bid_px="",
        offer_px="65000.01",
        quantity="1",
        valid_until_ms=int(time.time() * 1000) + ttl_ms,
    )


async def _take(book: QuoteBook, quote: StoredQuote, taker: str) -> TakeOutcome:
    outcome, _ = await book.take(quote.rfq_id, quote.quote_id, taker=taker, maker=quote.maker)
    return outcome


async def test_a_quote_is_taken_once_and_the_same_taker_gets_it_again(book: QuoteBook) -> None:
    quote = _quote(new_id())
    assert (await book.put(quote)).outcome is PutOutcome.STORED
    take = book.take
    assert await take(quote.rfq_id, quote.quote_id, taker="c1", maker="MM-1") == (
        TakeOutcome.TAKEN,
        quote,
    )
    assert await take(quote.rfq_id, quote.quote_id, taker="c1", maker="MM-1") == (
        TakeOutcome.TAKEN,
        quote,
    )
    assert await _take(book, quote, "c2") is TakeOutcome.ALREADY_TAKEN
    assert await book.taker(quote.rfq_id, quote.quote_id) == "c1"


@pytest.mark.parametrize("fate", ["taken", "withdrawn", "replaced", "expired"])
async def test_a_quote_id_that_is_gone_is_never_stored_again(
    book: QuoteBook, fate: str, redis: Redis
) -> None:
    quote = _quote(new_id())
    await book.put(quote)
    if fate == "taken":
        await _take(book, quote, "c1")
    elif fate == "withdrawn":
        await book.withdraw(quote.rfq_id, quote.quote_id, quote.maker)
    elif fate == "replaced":
        await book.replace(quote.quote_id, _quote(quote.rfq_id))
    else:
        await redis.delete(quote_key(quote.rfq_id, quote.quote_id))  # what expiry does
    again = await book.put(quote)  # e.g. a redelivered RFQ
    assert again.outcome is (PutOutcome.TAKEN if fate == "taken" else PutOutcome.GONE)
    assert await redis.get(quote_key(quote.rfq_id, quote.quote_id)) is None


async def test_putting_a_live_quote_id_again_keeps_the_first(book: QuoteBook) -> None:
    first = _quote(new_id())
    await book.put(first)
    repriced = _quote(first.rfq_id, first.quote_id, ttl_ms=9000)
    result = await book.put(repriced)
    assert result.outcome is PutOutcome.EXISTS
    assert result.quote == first


async def test_a_second_quote_from_the_same_maker_must_replace_the_first(book: QuoteBook) -> None:
    rfq_id = new_id()
    first, second = _quote(rfq_id), _quote(rfq_id)
    await book.put(first)
    refused = await book.put(second)
    assert (refused.outcome, refused.detail) == (PutOutcome.QUOTING, first.quote_id)
    assert (await book.put(_quote(rfq_id, maker="MM-2"))).outcome is PutOutcome.STORED


async def test_a_replacement_supersedes_the_old_quote(book: QuoteBook) -> None:
    rfq_id = new_id()
    old, new = _quote(rfq_id), _quote(rfq_id)
    await book.put(old)
    result = await book.replace(old.quote_id, new)
    assert (result.outcome, result.quote) == (ChangeOutcome.DONE, old)
    assert await _take(book, old, "c1") is TakeOutcome.REPLACED
    assert await _take(book, new, "c1") is TakeOutcome.TAKEN
    again = await book.replace(old.quote_id, _quote(rfq_id))
    assert (again.outcome, again.fate) == (ChangeOutcome.NOT_LIVE, Fate.REPLACED)


async def test_a_take_says_why_it_is_refused(book: QuoteBook, redis: Redis) -> None:
    withdrawn, expired = _quote(new_id()), _quote(new_id(), ttl_ms=300)
    await book.put(withdrawn)
    await book.put(expired)
    await book.withdraw(withdrawn.rfq_id, withdrawn.quote_id, withdrawn.maker)
    assert 0 < await redis.pttl(quote_key(expired.rfq_id, expired.quote_id)) <= 300
    await asyncio.sleep(0.4)
    assert await _take(book, withdrawn, "c") is TakeOutcome.WITHDRAWN
    assert await _take(book, expired, "c") is TakeOutcome.EXPIRED
    assert await _take(book, _quote(new_id()), "c") is TakeOutcome.UNKNOWN


async def test_a_maker_cannot_replace_or_withdraw_another_makers_quote(book: QuoteBook) -> None:
    quote = _quote(new_id(), maker="MM-1")
    await book.put(quote)
    intruder = _quote(quote.rfq_id, maker="MM-2")
    replaced = await book.replace(quote.quote_id, intruder)
    withdrawn = await book.withdraw(quote.rfq_id, quote.quote_id, "MM-2")
    assert replaced.outcome is withdrawn.outcome is ChangeOutcome.NOT_FOUND
    assert replaced.quote is withdrawn.quote is None  # nothing about the quote leaks
    assert await _take(book, intruder, "c") is TakeOutcome.UNKNOWN
    assert await _take(book, quote, "c") is TakeOutcome.TAKEN


async def test_the_makers_index_forgets_expired_quotes(book: QuoteBook, redis: Redis) -> None:
    maker = _maker()
    expiring = _quote(new_id(), maker=maker, ttl_ms=100)
    await book.put(expiring)
    await asyncio.sleep(0.15)
    fresh = _quote(new_id(), maker=maker)
    await book.put(fresh)
    members = await redis.zrange(live_key(maker), 0, -1)
    assert members == [f"{fresh.rfq_id}\n{fresh.quote_id}".encode()]


async def test_fifty_racing_accepts_take_a_quote_exactly_once(book: QuoteBook) -> None:
    quote = _quote(new_id())
    await book.put(quote)
    outcomes = await asyncio.gather(*(_take(book, quote, f"cmd-{i}") for i in range(50)))
    assert outcomes.count(TakeOutcome.TAKEN) == 1
    assert outcomes.count(TakeOutcome.ALREADY_TAKEN) == 49


async def test_a_replace_racing_a_take_ends_with_exactly_one_of_them(book: QuoteBook) -> None:
    async def race(i: int) -> str:
        old = _quote(new_id())
        new = _quote(old.rfq_id)
        await book.put(old)
        replacing, taking = book.replace(old.quote_id, new), _take(book, old, "cmd")
        # alternate who is sent first, so both orders are exercised
        if i % 2:
            taken, replaced = await asyncio.gather(taking, replacing)
        else:
            replaced, taken = await asyncio.gather(replacing, taking)
        if taken is TakeOutcome.TAKEN:
            assert (replaced.outcome, replaced.fate) == (ChangeOutcome.NOT_LIVE, Fate.TAKEN)
            assert await _take(book, new, "later") is TakeOutcome.UNKNOWN  # never stored
            return "take won"
        assert taken is TakeOutcome.REPLACED
        assert replaced.outcome is ChangeOutcome.DONE
        assert await _take(book, new, "later") is TakeOutcome.TAKEN
        return "replace won"

    winners = await asyncio.gather(*(race(i) for i in range(ROUNDS)))
    assert set(winners) == {"take won", "replace won"}


async def test_a_withdraw_racing_a_take_ends_with_exactly_one_of_them(book: QuoteBook) -> None:
    async def race(i: int) -> str:
        quote = _quote(new_id())
        await book.put(quote)
        withdrawing = book.withdraw(quote.rfq_id, quote.quote_id, quote.maker)
        taking = _take(book, quote, "cmd")
        if i % 2:
            taken, withdrawn = await asyncio.gather(taking, withdrawing)
        else:
            withdrawn, taken = await asyncio.gather(withdrawing, taking)
        if taken is TakeOutcome.TAKEN:
            assert (withdrawn.outcome, withdrawn.fate) == (ChangeOutcome.NOT_LIVE, Fate.TAKEN)
            return "take won"
        assert taken is TakeOutcome.WITHDRAWN
        assert (withdrawn.outcome, withdrawn.quote) == (ChangeOutcome.DONE, quote)
        return "withdraw won"

    winners = await asyncio.gather(*(race(i) for i in range(ROUNDS)))
    assert set(winners) == {"take won", "withdraw won"}


async def test_withdraw_all_takes_every_live_quote_and_halts_until_resumed(
    book: QuoteBook,
) -> None:
    maker = _maker()
    quotes = [_quote(new_id(), maker=maker) for _ in range(5)]
    for quote in quotes:
        await book.put(quote)
    taken = quotes.pop()
    await _take(book, taken, "cmd")
    other = _quote(new_id(), maker="MM-2")
    await book.put(other)
    now_ms = int(time.time() * 1000)
    assert sorted(await book.live(maker, now_ms)) == sorted((q.rfq_id, q.quote_id) for q in quotes)

    withdrawn = await book.withdraw_all(maker, halt="kill switch")
    assert sorted(withdrawn, key=lambda q: q.quote_id) == sorted(quotes, key=lambda q: q.quote_id)
    for quote in quotes:
        assert await _take(book, quote, "late") is TakeOutcome.WITHDRAWN
    assert await book.live(maker, now_ms) == []
    assert await _take(book, other, "cmd") is TakeOutcome.TAKEN  # other makers untouched

    fresh = _quote(new_id(), maker=maker)
    refused = await book.put(fresh)
    assert (refused.outcome, refused.detail) == (PutOutcome.HALTED, "kill switch")
    assert await book.halted(maker) == "kill switch"
    assert await book.resume(maker)
    assert await book.halted(maker) is None
    assert (await book.put(fresh)).outcome is PutOutcome.STORED


async def test_no_quote_survives_a_kill_racing_new_quotes(book: QuoteBook) -> None:
    maker = _maker()
    killed, under_way = asyncio.Event(), asyncio.Event()
    stored: list[StoredQuote] = []

    async def keep_quoting() -> None:
        after_kill = 0
        while after_kill < 5:  # until well after the kill
            quote = _quote(new_id(), maker=maker)
            if (await book.put(quote)).outcome is PutOutcome.STORED:
                stored.append(quote)
                if len(stored) >= 8:
                    under_way.set()
            after_kill += killed.is_set()

    quoting = [asyncio.create_task(keep_quoting()) for _ in range(8)]
    await under_way.wait()  # the kill lands in the middle of the quoting
    withdrawn = await book.withdraw_all(maker, halt="kill")
    killed.set()
    await asyncio.gather(*quoting)
    assert withdrawn
    assert {q.quote_id for q in withdrawn} == {q.quote_id for q in stored}
    assert await book.live(maker, int(time.time() * 1000)) == []


async def test_a_take_given_back_is_live_again_and_can_be_taken_by_another(
    book: QuoteBook,
) -> None:
    maker = _maker()
    quote = _quote(new_id(), maker=maker)
    await book.put(quote)
    await book.take(quote.rfq_id, quote.quote_id, taker="refused-accept", maker=maker)

    assert await book.give_back(
        quote.rfq_id, quote.quote_id, taker="refused-accept", maker=maker
    ) is (Fate.LIVE)
    assert (quote.rfq_id, quote.quote_id) in await book.live(maker, int(time.time() * 1000))
    taken, stored = await book.take(quote.rfq_id, quote.quote_id, taker="retry", maker=maker)
    assert (taken, stored) == (TakeOutcome.TAKEN, quote)


async def test_only_the_taker_gives_a_take_back_and_only_once(book: QuoteBook) -> None:
    maker = _maker()
    quote = _quote(new_id(), maker=maker)
    await book.put(quote)
    await book.take(quote.rfq_id, quote.quote_id, taker="winner", maker=maker)

    assert await book.give_back(quote.rfq_id, quote.quote_id, taker="other", maker=maker) is None
    assert await book.taker(quote.rfq_id, quote.quote_id) == "winner"
    assert await book.give_back(quote.rfq_id, quote.quote_id, taker="winner", maker=maker)
    assert await book.give_back(quote.rfq_id, quote.quote_id, taker="winner", maker=maker) is None


@pytest.mark.parametrize("meanwhile", ["expired", "replaced", "withdrawn"])
async def test_a_take_given_back_stays_gone_if_its_quote_could_not_be_live(
    book: QuoteBook, meanwhile: str
) -> None:
    maker = _maker()
    quote = _quote(new_id(), maker=maker, ttl_ms=1000 if meanwhile == "expired" else 5000)
    await book.put(quote)
    await book.take(quote.rfq_id, quote.quote_id, taker="accept", maker=maker)
    if meanwhile == "expired":
        await asyncio.sleep(1.1)
    elif meanwhile == "replaced":  # the maker quoted anew while its quote was taken
        assert (await book.put(_quote(quote.rfq_id, maker=maker))).outcome is PutOutcome.STORED
    else:  # halted by its kill switch
        await book.withdraw_all(maker, halt="kill switch")

    fate = await book.give_back(quote.rfq_id, quote.quote_id, taker="accept", maker=maker)

    assert fate is Fate(meanwhile)
    taken, _ = await book.take(quote.rfq_id, quote.quote_id, taker="retry", maker=maker)
    assert taken is TakeOutcome(meanwhile)
    await book.resume(maker)
