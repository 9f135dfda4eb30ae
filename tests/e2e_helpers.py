"""Shared pieces of the end-to-end tests: tokens and a trader client on the platform."""

from __future__ import annotations

from datetime import timedelta

from otc.auth import Role, mint_token
from otc.clock import SystemClock
from stack.infra.platform import Platform

# Short enough that expiry tests wait little, long enough for a loaded CI machine.
TEST_QUOTE_TTL_MS = 4000

# What the services of a test platform run with.
SERVICE_ENV = {
    "OTC_ENV": "test",
    "OTC_QUOTE_TTL_MS": str(TEST_QUOTE_TTL_MS),
    # a loaded 2-core CI machine can take longer than the 2 s a trader waits
    "OTC_ACCEPT_REPLY_TIMEOUT_MS": "6000",
    # the 200 ms default is too tight for a last look's Kafka round trips there
    "OTC_LAST_LOOK_WINDOW_MS": "3000",
    "OTC_LOG_LEVEL": "INFO",
    # the race tests fire bursts at one party; tests of the limit use their own edge
    "OTC_RATE_LIMIT_PER_S": "10000",
    "OTC_RATE_LIMIT_BURST": "10000",
    "OTC_CALENDAR": "always_open",
    # a trade the parties cannot meet fails after three attempts within a second
    "OTC_SETTLEMENT_MAX_ATTEMPTS": "3",
    "OTC_SETTLEMENT_RETRY_BASE_MS": "100",
    "OTC_SETTLEMENT_RETRY_MAX_MS": "400",
}


def token_for(platform: Platform, party: str, role: Role = Role.TRADER) -> str:
    return mint_token(
        party,
        role,
        secret=platform.settings.jwt_secret.get_secret_value(),
        now=SystemClock().now(),
        ttl=timedelta(hours=1),
    )


def base_url(platform: Platform) -> str:
    return f"http://127.0.0.1:{platform.http_port}"
