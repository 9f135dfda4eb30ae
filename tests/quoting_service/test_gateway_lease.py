"""A bot's socket lives only as long as its token: it is closed with `token_expired`
(4401) when the token expires, unless the bot sent a fresh token of its own maker
in an `auth` message, which a token of another maker cannot do."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import websockets

from otc.auth import Role, mint_token
from tests.quoting_service.test_gateway import (
    SECRET,
    Bot,
    Gateway,
    delivered,
    gateway,
    rfq,
    withdrawn,
)

pytestmark = pytest.mark.infra

SUFFIX = uuid.uuid4().hex[:6]
MAKER, OTHER = f"MM-TA-{SUFFIX}", f"MM-TB-{SUFFIX}"
# long enough for a loaded machine to open the socket and ask a few things first
SHORT = timedelta(seconds=8)

__all__ = ["gateway"]  # the module's fixture, used here


def short_token(maker: str, ttl: timedelta = SHORT) -> str:
    return mint_token(maker, Role.MARKET_MAKER, secret=SECRET, now=datetime.now(UTC), ttl=ttl)


@contextlib.asynccontextmanager
async def bot_with(gateway: Gateway, token: str) -> AsyncIterator[Bot]:
    ws = await websockets.connect(
        gateway.ws_url, additional_headers={"Authorization": f"Bearer {token}"}
    )
    bot = Bot(ws)
    bot.tasks += [asyncio.create_task(bot.read()), asyncio.create_task(bot.beat())]
    try:
        await bot.wait_for(lambda m: m["type"] == "welcome")
        yield bot
    finally:
        await ws.close()
        for task in bot.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def closed_code(bot: Bot, timeout: float = 30) -> int | None:
    async with asyncio.timeout(timeout):
        await bot.ws.wait_closed()
    return bot.ws.close_code


async def test_a_bot_is_disconnected_when_its_token_expires_and_its_quotes_withdrawn(
    gateway: Gateway,
) -> None:
    async with bot_with(gateway, short_token(MAKER)) as bot:
        alive = await bot.ask("auth", {"token": ""})
        assert alive["error"]["code"] == "invalid_request"  # answered: the socket works
        rfq_id = await delivered(gateway, bot, rfq([MAKER]))
        quote = await bot.ask("quote", {"rfq_id": rfq_id, "offer_px": "65010"})
        quote_id = quote["data"]["quote_id"]
        assert await closed_code(bot, timeout=30) == 4401
        [seen] = await gateway.tap.wait_for(withdrawn(quote_id))
        assert seen.message is not None
        assert seen.message.payload.reason == "token expired"
        expired = await bot.wait_for(lambda m: m.get("error", {}).get("code") == "token_expired")
        assert "auth message" in expired["error"]["message"]


async def test_a_fresh_token_keeps_the_socket_open_past_the_first_ones_expiry(
    gateway: Gateway,
) -> None:
    async with bot_with(gateway, short_token(MAKER)) as bot:
        renewed = await bot.ask("auth", {"token": short_token(MAKER, timedelta(hours=1))})
        expires_at = datetime.fromisoformat(renewed["data"]["expires_at"])
        assert expires_at > datetime.now(UTC) + timedelta(minutes=50)
        await asyncio.sleep(SHORT.total_seconds() + 2)
        still = await bot.ask("auth", {"token": short_token(MAKER, timedelta(hours=1))})
        assert still["type"] == "response"
        assert bot.ws.close_code is None


async def test_another_makers_token_renews_nothing(gateway: Gateway) -> None:
    async with bot_with(gateway, short_token(MAKER)) as bot:
        refused = await bot.ask("auth", {"token": short_token(OTHER, timedelta(hours=1))})
        assert refused["error"]["code"] == "forbidden"
        bad = await bot.ask("auth", {"token": "not-a-jwt"})
        assert bad["error"]["code"] == "unauthorized"
        assert await closed_code(bot) == 4401
        raw = [json.loads(r) for r in bot.raw]
        assert any(m.get("error", {}).get("code") == "token_expired" for m in raw)
