"""A maker's bot messages are rate-limited per maker over real WebSockets: over its
budget a message gets a `rate_limited` error saying when to retry and changes
nothing, a second socket buys no more, another maker is not slowed, and a bot
that keeps flooding, malformed messages included, is disconnected. A maker holds
at most its number of bot sockets."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets

from otc.auth import verify_token
from otc.settings import Settings
from quoting_service.bootstrap import build_gateway
from stack.infra.processes import free_port
from stack.infra.provider import Endpoints
from tests.quoting_service.test_gateway import SECRET, Bot, token

pytestmark = pytest.mark.infra

BURST = 5
REFUSALS_BEFORE_CLOSE = 20
MAX_SESSIONS = 2
SUFFIX = uuid.uuid4().hex[:6]
FLOODER, OTHER = f"MM-LF-{SUFFIX}", f"MM-LO-{SUFFIX}"


@pytest.fixture(scope="module")
async def ws_url(endpoints: Endpoints) -> AsyncIterator[str]:
    port = free_port()
    settings = Settings(
        kafka_bootstrap=endpoints.kafka_bootstrap,
        redis_url=endpoints.redis_url,
        mm_http_port=port,
        # slow enough that a burst sent at once cannot have refilled a token
        mm_messages_per_s=0.5,
        mm_message_burst=BURST,
        mm_refusals_before_close=REFUSALS_BEFORE_CLOSE,
        ws_max_sessions=MAX_SESSIONS,
    )
    service = build_gateway(settings, verify=lambda t: verify_token(t, secret=SECRET))
    await service.start()
    running = asyncio.create_task(service.run())
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(400):
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                        break
                await asyncio.sleep(0.05)
        yield f"ws://127.0.0.1:{port}/v1/mm/ws"
    finally:
        await service.stop()
        await running
        await service.close()


@contextlib.asynccontextmanager
async def connected(url: str, maker: str) -> AsyncIterator[Bot]:
    ws = await websockets.connect(
        url, additional_headers={"Authorization": f"Bearer {token(maker)}"}
    )
    bot = Bot(ws)
    bot.tasks.append(asyncio.create_task(bot.read()))
    try:
        await bot.wait_for(lambda m: m["type"] == "welcome")
        yield bot
    finally:
        await ws.close()
        for task in bot.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def send_many(bot: Bot, count: int, prefix: str) -> list[dict[str, Any]]:
    """Sends `count` withdrawals at once; their answers, in order."""
    ids = [f"{prefix}{i}" for i in range(count)]
    for request_id in ids:
        data = {"rfq_id": str(uuid.uuid4()), "quote_id": str(uuid.uuid4())}
        await bot.ws.send(json.dumps({"type": "withdraw", "request_id": request_id, "data": data}))
    return [await bot.wait_for(lambda m, r=r: m.get("request_id") == r) for r in ids]  # type: ignore[misc]


def refused(answer: dict[str, Any]) -> bool:
    return answer.get("type") == "error" and answer["error"]["code"] == "rate_limited"


async def test_over_its_budget_a_maker_is_refused_with_when_to_retry_and_others_are_not(
    ws_url: str,
) -> None:
    async with connected(ws_url, FLOODER) as flooder, connected(ws_url, OTHER) as other:
        answers = await send_many(flooder, BURST + 5, "f")
        assert [refused(a) for a in answers] == [False] * BURST + [True] * 5
        retry_after = answers[-1]["error"]["retry_after"]
        assert 0 < retry_after <= BURST / 0.5
        # the budget is the maker's: a second socket of the same maker gets no more
        async with connected(ws_url, FLOODER) as second:
            assert refused((await send_many(second, 1, "s"))[0])
        # another maker has its own budget
        assert not any(refused(a) for a in await send_many(other, BURST, "o"))


async def test_a_bot_that_keeps_flooding_is_disconnected(ws_url: str) -> None:
    maker = f"MM-LD-{SUFFIX}"
    async with connected(ws_url, maker) as bot:
        await send_many(bot, BURST + REFUSALS_BEFORE_CLOSE - 1, "d")
        assert not bot.ws.close_code, "still connected one refusal short of the limit"
        await bot.ws.send("not even JSON")  # a malformed message counts like any other
        with contextlib.suppress(websockets.ConnectionClosed):
            await asyncio.wait_for(bot.ws.wait_closed(), 10)
        assert bot.ws.close_code == 1008
        assert "rate limit" in (bot.ws.close_reason or "")


async def test_a_maker_holds_at_most_its_bot_sockets(ws_url: str) -> None:
    maker = f"MM-LS-{SUFFIX}"
    async with connected(ws_url, maker), connected(ws_url, maker) as second:
        headers = {"Authorization": f"Bearer {token(maker)}"}
        async with websockets.connect(ws_url, additional_headers=headers) as refused:
            error = json.loads(await refused.recv())
            assert error["error"]["code"] == "too_many_sessions"
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await refused.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4429
        await second.ws.close()
        for _ in range(50):  # the gateway sees the close a moment after the bot does
            async with websockets.connect(ws_url, additional_headers=headers) as again:
                if json.loads(await again.recv())["type"] == "welcome":
                    break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("a bot socket closed did not make room for another")
