"""Price streams per connection: only on change, at most `max_rate_hz` per
instrument, latest wins. Time is a fake loop's; one test uses the real loop."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from rfq_service.service_layer.prices import PriceBoard, PriceSubscription

T0 = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
HZ = 4.0
INTERVAL = 1 / HZ


class FakeHandle:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeLoop:
    """Time moves only in `advance`, which runs the timers that fall due."""

    def __init__(self) -> None:
        self.now = 500.0
        self._timers: list[tuple[float, int, Callable[[], object], FakeHandle]] = []
        self._seq = itertools.count()

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[[], object]) -> FakeHandle:
        handle = FakeHandle()
        heapq.heappush(self._timers, (self.now + delay, next(self._seq), callback, handle))
        return handle

    def advance(self, seconds: float) -> None:
        until = self.now + seconds
        while self._timers and self._timers[0][0] <= until:
            due, _, callback, handle = heapq.heappop(self._timers)
            self.now = max(self.now, due)
            if not handle.cancelled:
                callback()
        self.now = until

    @property
    def pending(self) -> int:
        return sum(not handle.cancelled for *_, handle in self._timers)


class Client:
    """One connection: what it was sent, and when."""

    def __init__(self, board: PriceBoard, loop: FakeLoop, hz: float = HZ) -> None:
        self.loop = loop
        self.received: list[tuple[float, dict[str, Any]]] = []
        self.prices = PriceSubscription(board, self._send, max_rate_hz=hz, scheduler=loop)

    def _send(self, message: dict[str, Any]) -> None:
        self.received.append((self.loop.now, message))

    def mids(self, instrument: str = "BTC-USD") -> list[str]:
        return [m["data"]["mid"] for _, m in self.received if m["data"]["instrument"] == instrument]


@pytest.fixture
def loop() -> FakeLoop:
    return FakeLoop()


@pytest.fixture
def board() -> PriceBoard:
    return PriceBoard()


def tick(board: PriceBoard, mid: str, instrument: str = "BTC-USD", at: datetime = T0) -> None:
    board.on_tick(instrument, Decimal(mid), at)


def test_subscribing_sends_the_current_price_at_once(board: PriceBoard, loop: FakeLoop) -> None:
    tick(board, "65000.10", at=T0 + timedelta(microseconds=250))
    client = Client(board, loop)
    client.prices.subscribe(["BTC-USD"])
    assert client.received == [
        (
            loop.now,
            {
                "type": "price",
                "data": {
                    "instrument": "BTC-USD",
                    "mid": "65000.10",
                    "at": "2030-01-02T03:04:05.000250Z",
                },
            },
        )
    ]


def test_an_instrument_without_a_price_yet_sends_on_its_first_tick(
    board: PriceBoard, loop: FakeLoop
) -> None:
    client = Client(board, loop)
    client.prices.subscribe(["ETH-USD"])
    assert client.received == []
    tick(board, "3200.5", "ETH-USD")
    assert client.mids("ETH-USD") == ["3200.5"]


def test_a_tick_with_the_same_mid_sends_nothing(board: PriceBoard, loop: FakeLoop) -> None:
    client = Client(board, loop)
    client.prices.subscribe(["BTC-USD"])
    tick(board, "100")
    for n in range(1, 10):
        loop.advance(1.0)
        tick(board, "100.00", at=T0 + timedelta(seconds=n))
    assert client.mids() == ["100"]


def test_a_mid_that_moves_and_comes_back_within_the_interval_sends_nothing(
    board: PriceBoard, loop: FakeLoop
) -> None:
    client = Client(board, loop)
    client.prices.subscribe(["BTC-USD"])
    tick(board, "100")
    loop.advance(0.05)
    tick(board, "101")
    tick(board, "100")
    loop.advance(1.0)
    assert client.mids() == ["100"]


def test_during_a_burst_the_latest_price_is_sent_when_the_interval_opens(
    board: PriceBoard, loop: FakeLoop
) -> None:
    client = Client(board, loop)
    client.prices.subscribe(["BTC-USD"])
    tick(board, "100")
    for n in range(1, 11):
        loop.advance(0.01)
        tick(board, f"{100 + n}")
    assert client.mids() == ["100"]
    loop.advance(INTERVAL)
    assert client.mids() == ["100", "110"]
    assert client.received[1][0] == pytest.approx(client.received[0][0] + INTERVAL)
    loop.advance(10.0)
    assert client.mids() == ["100", "110"]  # no backlog follows


def test_a_burst_of_1000_ticks_is_capped_and_ends_on_the_last_price(
    board: PriceBoard, loop: FakeLoop
) -> None:
    client = Client(board, loop)
    client.prices.subscribe(["BTC-USD"])
    start = loop.now
    for n in range(1000):
        tick(board, f"{65000 + n}.5")
        loop.advance(0.0025)  # 400 ticks a second for 2.5 s
    loop.advance(INTERVAL)
    times = [at for at, _ in client.received]
    window = loop.now - start
    assert len(times) <= window * HZ + 1
    assert len(times) >= 2.5 * HZ  # capped, not starved
    assert min(b - a for a, b in itertools.pairwise(times)) >= INTERVAL - 1e-9
    assert client.mids()[-1] == "65999.5"


def test_connections_are_independent(board: PriceBoard, loop: FakeLoop) -> None:
    fast, slow, other = Client(board, loop, hz=100), Client(board, loop), Client(board, loop)
    fast.prices.subscribe(["BTC-USD"])
    slow.prices.subscribe(["BTC-USD"])
    other.prices.subscribe(["ETH-USD"])
    for n in range(10):
        tick(board, f"{100 + n}")
        loop.advance(0.02)
    loop.advance(1.0)
    assert fast.mids() == [f"{100 + n}" for n in range(10)]
    assert slow.mids() == ["100", "109"]
    assert other.received == []

    late = Client(board, loop)
    late.prices.subscribe(["BTC-USD"])  # a newcomer is not held back by the others' timers
    assert late.mids() == ["109"]


def test_each_instrument_has_its_own_cap(board: PriceBoard, loop: FakeLoop) -> None:
    client = Client(board, loop)
    client.prices.subscribe(["BTC-USD", "ETH-USD"])
    tick(board, "100", "BTC-USD")
    tick(board, "200", "ETH-USD")
    assert client.mids("BTC-USD") == ["100"]
    assert client.mids("ETH-USD") == ["200"]


def test_unsubscribing_stops_delivery_and_drops_a_pending_send(
    board: PriceBoard, loop: FakeLoop
) -> None:
    client = Client(board, loop)
    client.prices.subscribe(["BTC-USD", "ETH-USD"])
    tick(board, "100")
    tick(board, "101")  # coalesced: waits for the interval
    assert loop.pending == 1
    client.prices.unsubscribe(["BTC-USD", "DOGE-USD"])
    assert loop.pending == 0
    loop.advance(1.0)
    tick(board, "102")
    tick(board, "200", "ETH-USD")
    assert client.mids() == ["100"]
    assert client.mids("ETH-USD") == ["200"]
    assert client.prices.instruments == {"ETH-USD"}


def test_subscribing_twice_changes_nothing(board: PriceBoard, loop: FakeLoop) -> None:
    tick(board, "100")
    client = Client(board, loop, hz=1000)
    client.prices.subscribe(["BTC-USD"])
    client.prices.subscribe(["BTC-USD", "BTC-USD"])
    loop.advance(1.0)
    tick(board, "101")
    assert client.mids() == ["100", "101"]


def test_a_closed_subscription_is_forgotten_by_the_board(board: PriceBoard, loop: FakeLoop) -> None:
    client = Client(board, loop)
    client.prices.subscribe(["BTC-USD", "ETH-USD"])
    tick(board, "100")
    tick(board, "101")
    client.prices.close()
    assert loop.pending == 0
    assert board._watchers == {}
    tick(board, "102")
    assert client.mids() == ["100"]


def test_a_late_tick_does_not_replace_a_newer_price(board: PriceBoard) -> None:
    tick(board, "101", at=T0 + timedelta(seconds=1))
    tick(board, "100", at=T0)
    latest = board.latest("BTC-USD")
    assert latest is not None
    assert latest.mid == Decimal("101")


async def test_on_the_real_loop_a_coalesced_price_follows_within_the_interval() -> None:
    board, sent = PriceBoard(), asyncio.Queue[dict[str, Any]]()
    prices = PriceSubscription(board, sent.put_nowait, max_rate_hz=50)  # every 20 ms
    prices.subscribe(["BTC-USD"])
    tick(board, "100")
    tick(board, "101")
    tick(board, "102")
    first = sent.get_nowait()
    assert sent.empty()
    second = await asyncio.wait_for(sent.get(), timeout=5)
    assert (first["data"]["mid"], second["data"]["mid"]) == ("100", "102")
    prices.close()
