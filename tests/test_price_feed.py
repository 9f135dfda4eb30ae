"""The simulated reference-price feed: the pure random walk, then the service on Kafka."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import timedelta
from decimal import Decimal
from itertools import pairwise

import pytest

from otc.bus.producer import Publisher
from otc.bus.topics import MARKET_PRICES
from otc.clock import SystemClock
from otc.contracts import events_pb2
from otc.instruments import INSTRUMENTS, Instrument
from stack.infra.provider import Endpoints
from stack.price_feed import PriceFeed, RandomWalk
from tests.kafka_tap import KafkaTap


def walk_prices(seed: int, instrument: Instrument, steps: int = 200) -> list[Decimal]:
    walk = RandomWalk(instrument, random.Random(seed))
    return [walk.step() for _ in range(steps)]


def test_a_seeded_walk_repeats_exactly() -> None:
    btc = INSTRUMENTS["BTC-USD"]
    assert walk_prices(7, btc) == walk_prices(7, btc)
    assert walk_prices(7, btc) != walk_prices(8, btc)


@pytest.mark.parametrize("symbol", sorted(INSTRUMENTS))
def test_the_walk_stays_on_the_tick_and_moves_a_few_bps_at_most(symbol: str) -> None:
    instrument = INSTRUMENTS[symbol]
    walk = RandomWalk(instrument, random.Random(1), max_step_bps=Decimal(2))
    previous = walk.mid
    for _ in range(5_000):
        mid = walk.step()
        assert mid % instrument.tick == 0
        # two bps of movement plus at most half a tick of rounding
        assert abs(mid - previous) <= previous * Decimal("0.0002") + instrument.tick / 2
        previous = mid


def test_the_walk_never_falls_below_one_tick() -> None:
    coarse = Instrument("COARSE-USD", "COARSE", "USD", Decimal("0.5"), Decimal("1"))
    walk = RandomWalk(coarse, random.Random(3), max_step_bps=Decimal(5_000))
    mids = [walk.step() for _ in range(2_000)]
    assert min(mids) == Decimal("0.5")  # it reached the floor and stayed on it
    assert all(mid % coarse.tick == 0 for mid in mids)


def test_the_walk_starts_on_the_tick() -> None:
    walk = RandomWalk(INSTRUMENTS["EUR-USD"], random.Random(0), start=Decimal("1.0800049"))
    assert walk.mid == Decimal("1.08000")


async def test_the_feed_publishes_every_mid_first_then_only_changes(endpoints: Endpoints) -> None:
    producer = f"price-feed-test-{uuid.uuid4().hex[:8]}"
    rng = random.Random(11)
    # one tenth of a bp per step at most: a third of the steps leave the mid where it is
    walks = [RandomWalk(i, rng, max_step_bps=Decimal("0.1")) for i in INSTRUMENTS.values()]
    feed = PriceFeed(
        publisher=Publisher(endpoints.kafka_bootstrap, producer),
        walks=walks,
        interval=timedelta(milliseconds=20),
        clock=SystemClock(),
    )
    async with KafkaTap(endpoints.kafka_bootstrap, MARKET_PRICES) as tap:
        assert not feed.ready()
        await feed.start()
        assert feed.ready()
        running = asyncio.create_task(feed.run())
        try:
            await tap.wait_for(
                lambda s: s.message is not None and s.message.producer == producer, count=30
            )
        finally:
            await feed.stop()
            await running
            await feed.close()
    ticks = [s for s in tap.seen if s.message is not None and s.message.producer == producer]
    by_instrument: dict[str, list[str]] = {}
    for seen in ticks:
        assert seen.message is not None
        tick = seen.message.payload
        assert isinstance(tick, events_pb2.PriceTick)
        assert seen.key == tick.instrument
        assert tick.HasField("at")
        by_instrument.setdefault(tick.instrument, []).append(tick.mid)
    assert set(by_instrument) == set(INSTRUMENTS)
    for symbol, mids in by_instrument.items():
        assert Decimal(mids[0]) == INSTRUMENTS[symbol].reference_mid
        assert all(a != b for a, b in pairwise(mids)), symbol
