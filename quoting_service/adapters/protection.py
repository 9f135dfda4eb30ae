"""The rolling window of market-maker protection, in Redis: what every process
serving a maker adds to and reads, and what survives their restarts.

Each accepted quote is one member named by its credit reservation, so a last look
seen twice (a redelivery, or two gateway replicas) counts once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from redis.asyncio import Redis

from otc.clock import to_millis
from otc.money import fmt, parse_decimal

# KEYS: the window. ARGV: member, now ms, oldest ms kept, window ms.
_RECORD = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
redis.call('ZADD', KEYS[1], 'NX', ARGV[2], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""


def window_key(maker: str) -> str:
    return f"mmp-window:{maker}"


class ProtectionWindow:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._record = redis.register_script(_RECORD)

    async def record(
        self, maker: str, reservation_id: str, notional: Decimal, now: datetime, window: timedelta
    ) -> list[Decimal]:
        """Adds one accepted quote; returns the notionals accepted within the window."""
        window_ms = int(window / timedelta(milliseconds=1))
        members = await self._record(
            keys=[window_key(maker)],
            args=[
                f"{reservation_id}\n{fmt(notional)}",
                to_millis(now),
                to_millis(now) - window_ms,
                window_ms,
            ],
        )
        return [parse_decimal(_text(m).split("\n", 1)[1]) for m in members]

    async def clear(self, maker: str) -> None:
        await self._redis.delete(window_key(maker))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
