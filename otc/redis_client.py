"""Redis connections with timeouts: a stalled server raises instead of hanging."""

from __future__ import annotations

from redis.asyncio import Redis

SOCKET_TIMEOUT_S = 2.0


def connect(url: str) -> Redis:
    return Redis.from_url(
        url,
        socket_timeout=SOCKET_TIMEOUT_S,
        socket_connect_timeout=SOCKET_TIMEOUT_S,
        health_check_interval=30,
    )
