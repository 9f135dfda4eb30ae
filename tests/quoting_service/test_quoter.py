"""One maker's quoter on the real Kafka and Valkey, run in-process.

The quoter is shared by the whole module, since joining a consumer group takes
seconds. It quotes for a maker name no other test uses, so nothing else in the
session is addressed to it. To prove that a message got *no* answer, a test
publishes a quotable "sentinel" under the same Kafka key afterwards: one key is one
partition, handled in order, so once the sentinel is answered the message before it
has been handled.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf.message import Message as ProtoMessage
from redis.asyncio import Redis

from otc.bus.producer import Publisher
from otc.bus.topics import (
    LASTLOOK_REQUESTS,
    LASTLOOK_RESPONSES,
    MARKET_PRICES,
    RFQ_QUOTES,
    RFQ_REQUESTS,
    dlq,
)
from otc.clock import to_millis
from otc.contracts import events_pb2
from otc.ids import derived_id
from otc.instruments import INSTRUMENTS
from otc.quote_book import StoredQuote, quote_key
from otc.settings import Settings
from quoting_service.bootstrap import build
from quoting_service.entrypoints.quoter import Quoter
from stack.infra.provider import Endpoints
from tests.kafka_tap import KafkaTap, Seen
from tests.quoting_service.announce import announce

QUOTE_TTL = timedelta(seconds=4)
BTC = INSTRUMENTS["BTC-USD"]


@dataclass(frozen=True)
class Harness:
    maker: str
    quoter: Quoter
    publisher: Publisher
    tap: KafkaTap
    redis: Redis


def now() -> datetime:
    return datetime.now(UTC)


async def wait_until(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not true after {timeout}s")
        await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
async def harness(endpoints: Endpoints) -> AsyncIterator[Harness]:
    maker = f"MM-T-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        kafka_bootstrap=endpoints.kafka_bootstrap,
        redis_url=endpoints.redis_url,
        database_url=endpoints.database_url,
        quote_ttl_ms=int(QUOTE_TTL / timedelta(milliseconds=1)),
    )
    publisher = Publisher(endpoints.kafka_bootstrap, "quoter-test")
    await publisher.start()
    tick = events_pb2.PriceTick(instrument=BTC.symbol, mid=str(BTC.reference_mid))
    tick.at.FromDatetime(now())
    await publisher.publish(MARKET_PRICES, BTC.symbol, tick, correlation_id="test-prices")
    quoter = build(
        settings,
        maker=maker,
        strategy_path="quoting_service.strategies.fixed_spread:FixedSpread",
    )
    assert isinstance(quoter, Quoter)
    redis = Redis.from_url(endpoints.redis_url)
    await quoter.start()
    running = asyncio.create_task(quoter.run())
    try:
        async with KafkaTap(
            endpoints.kafka_bootstrap, RFQ_QUOTES, LASTLOOK_RESPONSES, dlq(RFQ_REQUESTS)
        ) as tap:
            await wait_until(quoter.ready, timeout=60)
            # the reader caught up on start, so the tick published before is known
            assert quoter.deps.market.view(BTC).mid is not None
            yield Harness(maker, quoter, publisher, tap, redis)
    finally:
        await quoter.stop()
        await running
        await quoter.close()
        await redis.aclose()
        await publisher.stop()


def rfq(
    counterparties: list[str],
    *,
    requester: str = "TRADER-A",
    side: events_pb2.Side.ValueType = events_pb2.SIDE_BUY,
    expires_in: timedelta = timedelta(seconds=30),
    quantity: str = "2",
) -> events_pb2.RfqRequested:
    message = events_pb2.RfqRequested(
        rfq_id=str(uuid.uuid4()),
        client_rfq_id=uuid.uuid4().hex,
        requester=requester,
        instrument=BTC.symbol,
        side=side,
        quantity=quantity,
        counterparties=counterparties,
    )
    message.created_at.FromDatetime(now())
    message.expires_at.FromDatetime(now() + expires_in)
    return message


def last_look(maker: str, *, price: str, deadline_in: timedelta) -> events_pb2.LastLookRequested:
    message = events_pb2.LastLookRequested(
        rfq_id=str(uuid.uuid4()),
        quote_id=str(uuid.uuid4()),
        maker=maker,
        instrument=BTC.symbol,
        maker_side=events_pb2.SIDE_SELL,
        quantity="1.5",
        price=price,
        reservation_id=str(uuid.uuid4()),
    )
    message.deadline.FromDatetime(now() + deadline_in)
    return message


async def send(
    harness: Harness, topic: str, payload: ProtoMessage, *, key: str, event_id: str | None = None
) -> str:
    if isinstance(payload, events_pb2.RfqRequested):
        await announce(harness.publisher, payload)
    return await harness.publisher.publish(
        topic, key, payload, correlation_id=f"corr-{key}", event_id=event_id
    )


def quotes_for(rfq_id: str) -> Callable[[Seen], bool]:
    def matches(seen: Seen) -> bool:
        payload = seen.message.payload if seen.message is not None else None
        return isinstance(payload, events_pb2.QuoteSubmitted) and payload.rfq_id == rfq_id

    return matches


def responses_for(reservation_id: str) -> Callable[[Seen], bool]:
    def matches(seen: Seen) -> bool:
        payload = seen.message.payload if seen.message is not None else None
        return (
            isinstance(payload, events_pb2.LastLookResponse)
            and payload.reservation_id == reservation_id
        )

    return matches


def quote_of(seen: Seen) -> events_pb2.QuoteSubmitted:
    assert seen.message is not None
    assert isinstance(seen.message.payload, events_pb2.QuoteSubmitted)
    return seen.message.payload


async def sentinel_rfq(harness: Harness, key: str) -> None:
    """Returns once everything published earlier under `key` has been handled."""
    sentinel = rfq([harness.maker])
    await send(harness, RFQ_REQUESTS, sentinel, key=key)
    await harness.tap.wait_for(quotes_for(sentinel.rfq_id))


async def quote_keys(harness: Harness, rfq_id: str) -> list[bytes]:
    return [key async for key in harness.redis.scan_iter(match=f"quote:{{{rfq_id}}}:*")]


async def test_an_addressed_rfq_gets_one_quote_stored_until_it_expires(harness: Harness) -> None:
    request = rfq([harness.maker, "MM-SOMEONE-ELSE"], side=events_pb2.SIDE_BUY)
    before = now()
    event_id = await send(harness, RFQ_REQUESTS, request, key=request.rfq_id)
    [seen] = await harness.tap.wait_for(quotes_for(request.rfq_id))
    after = now()
    await sentinel_rfq(harness, request.rfq_id)
    assert len([s for s in harness.tap.seen if quotes_for(request.rfq_id)(s)]) == 1

    quote = quote_of(seen)
    assert quote.quote_id == derived_id("quote", request.rfq_id, harness.maker)
    assert (quote.maker, quote.instrument, quote.quantity) == (harness.maker, BTC.symbol, "2")
    assert quote.bid_px == ""  # a buy RFQ is offered to, never bid for
    assert quote.offer_px != ""
    assert seen.key == request.rfq_id
    assert seen.message is not None
    assert seen.message.correlation_id == f"corr-{request.rfq_id}"
    assert seen.message.causation_id == event_id

    valid_until = quote.valid_until.ToDatetime(tzinfo=UTC)
    assert before + QUOTE_TTL - timedelta(milliseconds=1) <= valid_until <= after + QUOTE_TTL
    key = quote_key(request.rfq_id, quote.quote_id)
    assert key == f"quote:{{{request.rfq_id}}}:{quote.quote_id}"
    assert await harness.redis.pexpiretime(key) == to_millis(valid_until)
    stored = StoredQuote.from_json(await harness.redis.get(key))
    assert (stored.maker, stored.offer_px, stored.bid_px) == (harness.maker, quote.offer_px, "")


async def test_a_quote_never_outlives_its_rfq(harness: Harness) -> None:
    request = rfq([harness.maker], side=events_pb2.SIDE_TWO_WAY, expires_in=timedelta(seconds=2))
    await send(harness, RFQ_REQUESTS, request, key=request.rfq_id)
    [seen] = await harness.tap.wait_for(quotes_for(request.rfq_id))
    quote = quote_of(seen)
    assert quote.bid_px != ""
    assert quote.offer_px != ""
    assert to_millis(quote.valid_until.ToDatetime(tzinfo=UTC)) == to_millis(
        request.expires_at.ToDatetime(tzinfo=UTC)
    )
    expiry = await harness.redis.pexpiretime(quote_key(request.rfq_id, quote.quote_id))
    assert expiry == to_millis(request.expires_at.ToDatetime(tzinfo=UTC))


@pytest.mark.parametrize(
    "case",
    [
        "addressed to another maker",
        "its own RFQ",
        "already expired",
        "a bad payload",
        "a block too large",
    ],
)
async def test_an_rfq_it_must_not_quote_gets_no_quote(harness: Harness, case: str) -> None:
    request = {
        "addressed to another maker": lambda: rfq(["MM-SOMEONE-ELSE"]),
        "its own RFQ": lambda: rfq([harness.maker, "MM-SOMEONE-ELSE"], requester=harness.maker),
        "already expired": lambda: rfq([harness.maker], expires_in=timedelta(seconds=-1)),
        "a bad payload": lambda: rfq([harness.maker], quantity="lots"),
        "a block too large": lambda: rfq([harness.maker], quantity="1000"),
    }[case]()
    await send(harness, RFQ_REQUESTS, request, key=request.rfq_id)
    await sentinel_rfq(harness, request.rfq_id)
    assert not [s for s in harness.tap.seen if quotes_for(request.rfq_id)(s)]
    assert await quote_keys(harness, request.rfq_id) == []


async def test_a_redelivered_rfq_gets_the_same_quote_again(harness: Harness) -> None:
    request = rfq([harness.maker], side=events_pb2.SIDE_SELL)
    event_id = await send(harness, RFQ_REQUESTS, request, key=request.rfq_id)
    await harness.tap.wait_for(quotes_for(request.rfq_id))
    await send(harness, RFQ_REQUESTS, request, key=request.rfq_id, event_id=event_id)
    first, second = await harness.tap.wait_for(quotes_for(request.rfq_id), count=2)
    assert quote_of(first) == quote_of(second)
    assert first.message is not None
    assert second.message is not None
    assert first.message.event_id == second.message.event_id  # downstream drops the copy
    assert len(await quote_keys(harness, request.rfq_id)) == 1


@pytest.mark.parametrize(
    ("price", "confirmed"),
    [
        # the maker sells: far above the mid is a good trade, far below a stale one
        (str(BTC.reference_mid * 2), True),
        (str(BTC.reference_mid / 2), False),
    ],
)
async def test_a_last_look_is_answered(harness: Harness, price: str, confirmed: bool) -> None:
    request = last_look(harness.maker, price=price, deadline_in=timedelta(seconds=5))
    event_id = await send(harness, LASTLOOK_REQUESTS, request, key=request.rfq_id)
    [seen] = await harness.tap.wait_for(responses_for(request.reservation_id))
    assert seen.key == request.rfq_id
    assert seen.message is not None
    assert seen.message.causation_id == event_id
    response = seen.message.payload
    assert isinstance(response, events_pb2.LastLookResponse)
    assert (response.rfq_id, response.quote_id, response.maker) == (
        request.rfq_id,
        request.quote_id,
        harness.maker,
    )
    assert response.confirmed is confirmed
    assert (response.reason == "") is confirmed
    assert response.price == (request.price if confirmed else "")  # a confirm repeats it


@pytest.mark.parametrize(
    ("for_this_maker", "deadline_in"),
    [(False, timedelta(seconds=5)), (True, timedelta(seconds=-1))],
    ids=["for another maker", "past its deadline"],
)
async def test_a_last_look_it_must_not_answer_gets_no_answer(
    harness: Harness, for_this_maker: bool, deadline_in: timedelta
) -> None:
    maker = harness.maker if for_this_maker else "MM-SOMEONE-ELSE"
    request = last_look(maker, price="1", deadline_in=deadline_in)
    await send(harness, LASTLOOK_REQUESTS, request, key=request.rfq_id)
    sentinel = last_look(harness.maker, price="1", deadline_in=timedelta(seconds=5))
    await send(harness, LASTLOOK_REQUESTS, sentinel, key=request.rfq_id)
    await harness.tap.wait_for(responses_for(sentinel.reservation_id))
    assert not [s for s in harness.tap.seen if responses_for(request.reservation_id)(s)]


async def test_garbage_is_dead_lettered_and_the_quoter_keeps_quoting(harness: Harness) -> None:
    garbage = f"not an envelope {uuid.uuid4()}".encode()
    key = str(uuid.uuid4())
    await harness.publisher.send_raw(RFQ_REQUESTS, key, garbage)
    bad = rfq([harness.maker], quantity="lots")
    await send(harness, RFQ_REQUESTS, bad, key=key)

    def dead_lettered(raw_matches: Callable[[bytes], bool]) -> Callable[[Seen], bool]:
        return lambda s: (
            s.topic == dlq(RFQ_REQUESTS)
            and s.headers.get("dlq.service") == harness.quoter.name.encode()
            and s.raw is not None
            and raw_matches(s.raw)
        )

    await harness.tap.wait_for(dead_lettered(lambda raw: raw == garbage))
    [invalid] = await harness.tap.wait_for(
        dead_lettered(lambda raw: bad.rfq_id.encode() in raw and b"lots" in raw)
    )
    assert b"quantity" in invalid.headers["dlq.reason"]
    await sentinel_rfq(harness, key)
