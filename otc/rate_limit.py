"""A token bucket per key (a party): `burst` calls at once, `rate_per_s` sustained.

Time is a monotonic float in seconds (`time.monotonic` by default): a wall clock
that steps back or forward would refill buckets wrongly. A bucket left alone long
enough to be full again is the same as no bucket, so such entries are dropped:
memory is bounded by the parties seen within one refill time, not by every party
ever seen.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from otc.errors import RateLimited

# float time is inexact: a wait served in full may refill a hair less than one token
_SLACK = 1e-9


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float  # when `tokens` was last brought up to date


class TokenBuckets:
    def __init__(
        self,
        *,
        rate_per_s: float,
        burst: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("a token bucket needs a positive rate and a burst of at least 1")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._monotonic = monotonic
        self._refill_s = burst / rate_per_s
        # least recently touched first: the evictable entries are always at the front
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def try_take(self, key: str, cost: float = 1) -> float | None:
        """None if `key` may go ahead (its tokens are taken), else the seconds to
        wait before the same call would be allowed."""
        if not 0 < cost <= self.burst:
            raise ValueError(f"cost must be in (0, {self.burst}], got {cost}")
        now = self._monotonic()
        self._evict_full(now)
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            bucket = _Bucket(self.burst, now)
        else:
            elapsed = max(0.0, now - bucket.at)
            bucket.tokens = min(self.burst, bucket.tokens + elapsed * self.rate_per_s)
            bucket.at = now
        self._buckets[key] = bucket
        if bucket.tokens + _SLACK >= cost:
            bucket.tokens = max(0.0, bucket.tokens - cost)
            return None
        return (cost - bucket.tokens) / self.rate_per_s

    def charge(self, key: str, cost: float = 1) -> None:
        """Takes `cost` tokens from `key`, or raises `RateLimited` saying when to retry."""
        wait = self.try_take(key, cost)
        if wait is not None:
            raise RateLimited(wait)

    def __len__(self) -> int:
        return len(self._buckets)

    def _evict_full(self, now: float) -> None:
        # untouched for a whole refill time means full, whatever it held
        while self._buckets:
            bucket = next(iter(self._buckets.values()))
            if now - bucket.at < self._refill_s:
                return
            self._buckets.popitem(last=False)
