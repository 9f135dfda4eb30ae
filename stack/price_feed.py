"""The simulated reference-price feed: a random walk per instrument on `market.prices`.

The demo makers quote around these mids and traders can watch them. `RandomWalk` is
pure (a seeded walk repeats exactly); `PriceFeed` is the service that publishes a
`PriceTick` keyed by instrument whenever a mid changes, so the latest tick of each
instrument is always near the end of its partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from datetime import timedelta
from decimal import Decimal

from otc import tracing
from otc.bus.producer import Publisher
from otc.bus.topics import MARKET_PRICES
from otc.clock import Clock, SystemClock
from otc.contracts import events_pb2
from otc.instruments import INSTRUMENTS, Instrument
from otc.logging import get_logger
from otc.money import fmt, round_to_tick
from otc.service import Service
from otc.settings import Settings

log = get_logger(__name__)

BPS = Decimal(10_000)


class RandomWalk:
    """A mid that moves each step by a whole number of tenths of a basis point, at
    most `max_step_bps` either way; it stays on the instrument's tick and never
    falls below one tick."""

    def __init__(
        self,
        instrument: Instrument,
        rng: random.Random,
        *,
        max_step_bps: Decimal = Decimal(2),
        start: Decimal | None = None,
    ) -> None:
        self.instrument = instrument
        self._rng = rng
        self._max_tenths = int(max_step_bps * 10)
        self.mid = self._on_tick(start if start is not None else instrument.reference_mid)

    def step(self) -> Decimal:
        tenths_of_bp = Decimal(self._rng.randint(-self._max_tenths, self._max_tenths))
        self.mid = self._on_tick(self.mid * (1 + tenths_of_bp / 10 / BPS))
        return self.mid

    def _on_tick(self, price: Decimal) -> Decimal:
        tick = self.instrument.tick
        return max(tick, round_to_tick(price, tick))


class PriceFeed:
    name = "price-feed"

    def __init__(
        self,
        *,
        publisher: Publisher,
        walks: list[RandomWalk],
        interval: timedelta,
        clock: Clock,
    ) -> None:
        self._publisher = publisher
        self._walks = walks
        self._interval = interval
        self._clock = clock
        self._published: dict[str, Decimal] = {}
        self._started = False
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        await self._publisher.start()
        self._started = True

    def ready(self) -> bool:
        return self._started

    async def run(self) -> None:
        # the first round publishes every starting mid, so readers know them at once
        changed = list(self._walks)
        while not self._stopping.is_set():
            # a trace of its own per round; without a span the ticks would join the
            # trace of their correlation id, the instrument, which never ends
            with tracing.span("price-feed tick", instruments=str(len(changed))):
                results = await asyncio.gather(
                    *(self._publish(walk) for walk in changed), return_exceptions=True
                )
            for walk, result in zip(changed, results, strict=True):
                if isinstance(result, Exception):
                    # harmless: the walk's next change publishes its newer mid
                    log.warning(
                        "price tick not published",
                        instrument=walk.instrument.symbol,
                        error=f"{type(result).__name__}: {result}",
                    )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval.total_seconds())
            changed = [
                w for w in self._walks if w.step() != self._published.get(w.instrument.symbol)
            ]

    async def _publish(self, walk: RandomWalk) -> None:
        symbol, mid = walk.instrument.symbol, walk.mid
        tick = events_pb2.PriceTick(instrument=symbol, mid=fmt(mid))
        tick.at.FromDatetime(self._clock.now())
        await self._publisher.publish(MARKET_PRICES, symbol, tick, correlation_id=symbol)
        self._published[symbol] = mid

    async def stop(self) -> None:
        self._stopping.set()

    async def close(self) -> None:
        await self._publisher.stop()


def build(settings: Settings, *, seed: int | None = None, clock: Clock | None = None) -> Service:
    """Must run inside the event loop that will run the feed (the Kafka producer
    binds to it). A seed makes the demo's prices repeat from run to run."""
    clock = clock or SystemClock()
    rng = random.Random(seed)  # noqa: S311 - simulated prices, not secrets
    return PriceFeed(
        publisher=Publisher(settings.require("kafka_bootstrap"), "price-feed", clock),
        walks=[RandomWalk(instrument, rng) for instrument in INSTRUMENTS.values()],
        interval=timedelta(milliseconds=settings.price_tick_ms),
        clock=clock,
    )
