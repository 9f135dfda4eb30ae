"""Reference prices for WebSocket subscribers, coalesced per connection.

Ticks arrive far faster than anyone reads them. `PriceBoard` keeps the latest mid
per instrument; a connection's `PriceSubscription` sends an instrument's price
only when its mid differs from the last one it sent, at most `max_rate_hz` times a
second. A change inside the interval arms one timer, which sends whatever is the
latest price when it fires: a burst costs one message, never a backlog.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from typing import Any, Protocol

from otc.money import fmt


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Scheduler(Protocol):
    """What the subscription needs of the event loop, which satisfies it: a
    monotonic time and a timer. Tests drive a fake one."""

    def time(self) -> float: ...

    def call_later(self, delay: float, callback: Callable[[], object]) -> TimerHandle: ...


@dataclass(frozen=True, slots=True)
class Price:
    instrument: str
    mid: Decimal
    at: datetime

    def message(self) -> dict[str, Any]:
        at = self.at.astimezone(UTC).isoformat().replace("+00:00", "Z")
        return {
            "type": "price",
            "data": {"instrument": self.instrument, "mid": fmt(self.mid), "at": at},
        }


Watcher = Callable[[Price], None]


class PriceBoard:
    """The latest price per instrument, and who wants to hear of a new one."""

    def __init__(self) -> None:
        self._latest: dict[str, Price] = {}
        self._watchers: dict[str, set[Watcher]] = {}

    def on_tick(self, instrument: str, mid: Decimal, at: datetime) -> None:
        known = self._latest.get(instrument)
        if known is not None and at < known.at:
            return  # a late tick must not replace a newer mid
        price = Price(instrument, mid, at)
        self._latest[instrument] = price
        for watcher in tuple(self._watchers.get(instrument, ())):
            watcher(price)

    def latest(self, instrument: str) -> Price | None:
        return self._latest.get(instrument)

    def watch(self, instrument: str, watcher: Watcher) -> None:
        self._watchers.setdefault(instrument, set()).add(watcher)

    def unwatch(self, instrument: str, watcher: Watcher) -> None:
        watchers = self._watchers.get(instrument)
        if watchers is not None:
            watchers.discard(watcher)
            if not watchers:
                del self._watchers[instrument]


@dataclass(slots=True)
class _Stream:
    sent_mid: Decimal | None = None
    sent_at: float = -math.inf
    timer: TimerHandle | None = None


class PriceSubscription:
    """One connection's price subscriptions; `send` must not block (a queue's
    put_nowait). Call `close` when the connection ends."""

    def __init__(
        self,
        board: PriceBoard,
        send: Callable[[dict[str, Any]], None],
        *,
        max_rate_hz: float,
        scheduler: Scheduler | None = None,
    ) -> None:
        if max_rate_hz <= 0:
            raise ValueError("max_rate_hz must be positive")
        self._board = board
        self._send = send
        self._interval = 1 / max_rate_hz
        self._scheduler: Scheduler = scheduler or asyncio.get_running_loop()
        self._streams: dict[str, _Stream] = {}

    @property
    def instruments(self) -> frozenset[str]:
        return frozenset(self._streams)

    def subscribe(self, instruments: Iterable[str]) -> None:
        """Already subscribed instruments are left as they are; a new one gets its
        current price at once, if one is known."""
        for instrument in instruments:
            if instrument in self._streams:
                continue
            self._streams[instrument] = _Stream()
            self._board.watch(instrument, self._on_price)
            current = self._board.latest(instrument)
            if current is not None:
                self._on_price(current)

    def unsubscribe(self, instruments: Iterable[str]) -> None:
        for instrument in instruments:
            stream = self._streams.pop(instrument, None)
            if stream is None:
                continue
            self._board.unwatch(instrument, self._on_price)
            if stream.timer is not None:
                stream.timer.cancel()

    def close(self) -> None:
        self.unsubscribe(tuple(self._streams))

    def _on_price(self, price: Price) -> None:
        stream = self._streams.get(price.instrument)
        if stream is None or stream.timer is not None or price.mid == stream.sent_mid:
            return  # not ours, already due to send the latest, or nothing new
        wait = stream.sent_at + self._interval - self._scheduler.time()
        if wait <= 0:
            self._deliver(stream, price)
        else:
            stream.timer = self._scheduler.call_later(wait, partial(self._due, price.instrument))

    def _due(self, instrument: str) -> None:
        stream = self._streams.get(instrument)
        if stream is None:
            return
        stream.timer = None
        latest = self._board.latest(instrument)
        # a mid that moved and came back within the interval is no change
        if latest is not None and latest.mid != stream.sent_mid:
            self._deliver(stream, latest)

    def _deliver(self, stream: _Stream, price: Price) -> None:
        stream.sent_mid, stream.sent_at = price.mid, self._scheduler.time()
        self._send(price.message())
