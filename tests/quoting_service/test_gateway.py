"""The market-maker gateway in-process on the real Kafka and Valkey, with bots on
real WebSockets: what a bot is sent (its own RFQs and last looks, never an
anonymous requester), what its messages do (through the desk), what it may not
touch (another maker's quotes and last looks), cancel on disconnect and on missed
heartbeats, and the kill switch API.

RFQs a test publishes share one Kafka key, so they reach the gateway in order: once
a bot has the last one, it has been sent everything before it that it will be.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import websockets
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from otc.auth import Role, mint_token, verify_token
from otc.bus.producer import Publisher
from otc.bus.topics import (
    LASTLOOK_REQUESTS,
    LASTLOOK_RESPONSES,
    MARKET_PRICES,
    RFQ_QUOTES,
    RFQ_REQUESTS,
)
from otc.contracts import events_pb2
from otc.instruments import INSTRUMENTS
from otc.quote_book import QuoteBook, TakeOutcome
from otc.settings import Settings
from quoting_service.bootstrap import build_gateway
from quoting_service.entrypoints.gateway import MmGateway
from stack.infra.processes import free_port
from stack.infra.provider import Endpoints
from tests.kafka_tap import KafkaTap, Seen
from tests.quoting_service.announce import announce

SECRET = "gateway-test-secret-of-at-least-32-bytes"
BTC = INSTRUMENTS["BTC-USD"]
HEARTBEAT_TIMEOUT_MS = 1500
SUFFIX = uuid.uuid4().hex[:6]
MAKER_A, MAKER_B = f"MM-GA-{SUFFIX}", f"MM-GB-{SUFFIX}"


@dataclass
class Gateway:
    port: int
    publisher: Publisher
    tap: KafkaTap
    book: QuoteBook

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/mm/ws"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def token(party: str, role: Role = Role.MARKET_MAKER) -> str:
    return mint_token(party, role, secret=SECRET, now=datetime.now(UTC), ttl=timedelta(hours=1))


async def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never came true"
        await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
async def gateway(endpoints: Endpoints) -> AsyncIterator[Gateway]:
    port = free_port()
    settings = Settings(
        kafka_bootstrap=endpoints.kafka_bootstrap,
        redis_url=endpoints.redis_url,
        mm_http_port=port,
        mm_heartbeat_timeout_ms=HEARTBEAT_TIMEOUT_MS,
    )
    publisher = Publisher(endpoints.kafka_bootstrap, "gateway-test")
    await publisher.start()
    tick = events_pb2.PriceTick(instrument=BTC.symbol, mid=str(BTC.reference_mid))
    tick.at.FromDatetime(datetime.now(UTC))
    await publisher.publish(MARKET_PRICES, BTC.symbol, tick, correlation_id="gateway-test")
    service = build_gateway(settings, verify=lambda t: verify_token(t, secret=SECRET))
    assert isinstance(service, MmGateway)
    redis = Redis.from_url(endpoints.redis_url)
    await service.start()
    running = asyncio.create_task(service.run())
    try:
        async with (
            KafkaTap(endpoints.kafka_bootstrap, RFQ_QUOTES, LASTLOOK_RESPONSES) as tap,
            httpx.AsyncClient() as client,
        ):

            async def up() -> bool:
                with contextlib.suppress(httpx.TransportError):
                    return (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200
                return False

            for _ in range(400):
                if await up():
                    break
                await asyncio.sleep(0.05)
            yield Gateway(port, publisher, tap, QuoteBook(redis))
    finally:
        await service.stop()
        await running
        await service.close()
        await redis.aclose()
        await publisher.stop()


@dataclass
class Bot:
    ws: Any
    received: list[dict[str, Any]] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    next_id: int = 0

    async def read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in self.ws:
                self.raw.append(raw)
                self.received.append(json.loads(raw))
                self.changed.set()

    async def beat(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                await self.ws.send(json.dumps({"type": "heartbeat"}))
                await asyncio.sleep(HEARTBEAT_TIMEOUT_MS / 5000)

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 20.0
    ) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for message in self.received:
                if predicate(message):
                    return message
            remaining = deadline - asyncio.get_running_loop().time()
            assert remaining > 0, f"not received; got {[m.get('type') for m in self.received]}"
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(remaining, 0.5))

    async def ask(self, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        self.next_id += 1
        request_id = f"r{self.next_id}"
        await self.ws.send(json.dumps({"type": kind, "request_id": request_id, "data": data}))
        return await self.wait_for(lambda m: m.get("request_id") == request_id)

    def rfqs(self) -> list[str]:
        return [m["data"]["rfq_id"] for m in self.received if m["type"] == "rfq"]


@contextlib.asynccontextmanager
async def bot(
    gateway: Gateway, maker: str, *, query: str = "", heartbeats: bool = True
) -> AsyncIterator[Bot]:
    ws = await websockets.connect(
        gateway.ws_url + query, additional_headers={"Authorization": f"Bearer {token(maker)}"}
    )
    connected = Bot(ws)
    connected.tasks.append(asyncio.create_task(connected.read()))
    if heartbeats:
        connected.tasks.append(asyncio.create_task(connected.beat()))
    try:
        await connected.wait_for(lambda m: m["type"] == "welcome")
        yield connected
    finally:
        await ws.close()
        for task in connected.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def rfq(makers: list[str], *, anonymous: bool = False) -> events_pb2.RfqRequested:
    now = datetime.now(UTC)
    message = events_pb2.RfqRequested(
        rfq_id=str(uuid.uuid4()),
        client_rfq_id=uuid.uuid4().hex,
        # as the edge publishes it to makers: no requester when anonymous
        requester="" if anonymous else "TRADER-A",
        instrument=BTC.symbol,
        side=events_pb2.SIDE_BUY,
        quantity="2",
        counterparties=makers,
        anonymous=anonymous,
    )
    message.created_at.FromDatetime(now)
    message.expires_at.FromDatetime(now + timedelta(seconds=30))
    return message


async def publish_rfqs(gateway: Gateway, *rfqs: events_pb2.RfqRequested) -> None:
    key = str(uuid.uuid4())
    for request in rfqs:
        await announce(gateway.publisher, request)
        await gateway.publisher.publish(RFQ_REQUESTS, key, request, correlation_id="test")


async def delivered(gateway: Gateway, bot_: Bot, request: events_pb2.RfqRequested) -> str:
    await publish_rfqs(gateway, request)
    await bot_.wait_for(lambda m: m["type"] == "rfq" and m["data"]["rfq_id"] == request.rfq_id)
    return request.rfq_id


def submitted_by(maker: str, rfq_id: str) -> Callable[[Seen], bool]:
    def matches(seen: Seen) -> bool:
        payload = seen.message.payload if seen.message is not None else None
        return isinstance(payload, events_pb2.QuoteSubmitted) and (
            payload.maker,
            payload.rfq_id,
        ) == (maker, rfq_id)

    return matches


def withdrawn(quote_id: str) -> Callable[[Seen], bool]:
    def matches(seen: Seen) -> bool:
        payload = seen.message.payload if seen.message is not None else None
        return isinstance(payload, events_pb2.QuoteWithdrawn) and payload.quote_id == quote_id

    return matches


def last_look(maker: str, rfq_id: str, quote_id: str) -> events_pb2.LastLookRequested:
    message = events_pb2.LastLookRequested(
        rfq_id=rfq_id,
        quote_id=quote_id,
        maker=maker,
        instrument=BTC.symbol,
        maker_side=events_pb2.SIDE_SELL,
        quantity="2",
        price="65010",
        reservation_id=str(uuid.uuid4()),
    )
    message.deadline.FromDatetime(datetime.now(UTC) + timedelta(seconds=10))
    return message


async def take(gateway: Gateway, rfq_id: str, quote_id: str, maker: str) -> TakeOutcome:
    outcome, _ = await gateway.book.take(rfq_id, quote_id, taker=str(uuid.uuid4()), maker=maker)
    return outcome


@pytest.mark.parametrize(
    ("credential", "code"),
    [("not a token", 4401), (token("TRADER-A", Role.TRADER), 4403), (None, 4401)],
)
async def test_a_connection_without_a_makers_token_is_closed_with_a_reason(
    gateway: Gateway, credential: str | None, code: int
) -> None:
    headers = {"Authorization": f"Bearer {credential}"} if credential else {}
    async with websockets.connect(gateway.ws_url, additional_headers=headers) as ws:
        error = json.loads(await ws.recv())
        assert error["type"] == "error"
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
    assert ws.close_code == code
    assert ws.close_reason


async def test_a_bot_gets_only_its_makers_rfqs_and_never_an_anonymous_requester(
    gateway: Gateway,
) -> None:
    async with bot(gateway, MAKER_A) as a, bot(gateway, MAKER_B) as b:
        anonymous, other, disclosed = (
            rfq([MAKER_A, "MM-1"], anonymous=True),
            rfq([MAKER_B]),
            rfq([MAKER_A]),
        )
        await publish_rfqs(gateway, anonymous, other, disclosed)
        await a.wait_for(lambda m: m["type"] == "rfq" and m["data"]["rfq_id"] == disclosed.rfq_id)
        await b.wait_for(lambda m: m["type"] == "rfq" and m["data"]["rfq_id"] == other.rfq_id)
        assert a.rfqs() == [anonymous.rfq_id, disclosed.rfq_id]
        [sent] = [m for m in a.received if m.get("data", {}).get("rfq_id") == anonymous.rfq_id]
        assert "requester" not in sent["data"]
        assert not [raw for raw in a.raw if "TRADER-A" in raw and anonymous.rfq_id in raw]
        assert b.rfqs() == [other.rfq_id]


async def test_a_bot_quotes_replaces_and_withdraws_through_the_desk(gateway: Gateway) -> None:
    async with bot(gateway, MAKER_A) as a:
        rfq_id = await delivered(gateway, a, rfq([MAKER_A]))
        quoted = await a.ask("quote", {"rfq_id": rfq_id, "offer_px": "65010"})
        assert quoted["type"] == "response", quoted
        first = quoted["data"]["quote_id"]
        replaced = await a.ask(
            "replace", {"rfq_id": rfq_id, "quote_id": first, "offer_px": "65020"}
        )
        second = replaced["data"]["quote_id"]
        assert replaced["data"]["replaces_quote_id"] == first
        _, new = await gateway.tap.wait_for(submitted_by(MAKER_A, rfq_id), count=2)
        assert new.message is not None
        assert new.message.payload.replaces_quote_id == first
        assert await take(gateway, rfq_id, first, MAKER_A) is TakeOutcome.REPLACED

        gone = await a.ask("withdraw", {"rfq_id": rfq_id, "quote_id": second})
        assert gone["data"] == {"rfq_id": rfq_id, "quote_id": second, "withdrawn": True}
        await gateway.tap.wait_for(withdrawn(second))
        await a.wait_for(
            lambda m: m["type"] == "quote_withdrawn" and m["data"]["quote_id"] == second
        )
        assert await take(gateway, rfq_id, second, MAKER_A) is TakeOutcome.WITHDRAWN


async def test_a_malformed_message_gets_an_error_the_connection_stays_nothing_is_published(
    gateway: Gateway,
) -> None:
    async with bot(gateway, MAKER_A) as a:
        rfq_id = await delivered(gateway, a, rfq([MAKER_A]))
        await a.ws.send("{not json")
        await a.wait_for(lambda m: m.get("error", {}).get("code") == "invalid_json")
        for kind, data, code in (
            ("quote", {"rfq_id": rfq_id, "offer_px": "a lot"}, "invalid_request"),
            ("quote", {"rfq_id": rfq_id, "offer_px": 65010}, "invalid_request"),
            ("quote", {"rfq_id": rfq_id, "offer_px": "65010", "extra": 1}, "invalid_request"),
            ("quote", {"rfq_id": rfq_id, "offer_px": "99999"}, "price_band"),
            ("quote", {"rfq_id": rfq_id, "bid_px": "65000"}, "invalid_quote"),
            ("quote", {"rfq_id": str(uuid.uuid4()), "offer_px": "65010"}, "unknown_rfq"),
            ("buy_everything", {}, "unknown_type"),
        ):
            answer = await a.ask(kind, data)
            assert (answer["type"], answer["error"]["code"]) == ("error", code), answer
        good = await a.ask("quote", {"rfq_id": rfq_id, "offer_px": "65010"})
        assert good["type"] == "response"
        await gateway.tap.wait_for(submitted_by(MAKER_A, rfq_id))
        assert len([s for s in gateway.tap.seen if submitted_by(MAKER_A, rfq_id)(s)]) == 1


async def test_a_reason_with_control_characters_is_refused_with_a_clear_error(
    gateway: Gateway,
) -> None:
    async with bot(gateway, MAKER_A) as a:
        rfq_id = await delivered(gateway, a, rfq([MAKER_A]))
        live = await a.ask("quote", {"rfq_id": rfq_id, "offer_px": "65010"})
        quote_id = live["data"]["quote_id"]
        for kind, data in (
            ("withdraw", {"rfq_id": rfq_id, "quote_id": quote_id, "reason": "re\x00pricing"}),
            (
                "last_look",
                {
                    "reservation_id": str(uuid.uuid4()),
                    "quote_id": quote_id,
                    "confirm": False,
                    "reason": "moved\x1b[2J",
                },
            ),
        ):
            answer = await a.ask(kind, data)
            assert answer["error"]["code"] == "invalid_request", answer
            assert (
                "reason: Value error, must not contain control characters (found U+"
                in (answer["error"]["message"])
            )
        # refused, not half-done: the quote is still live and withdraws cleanly
        gone = await a.ask("withdraw", {"rfq_id": rfq_id, "quote_id": quote_id, "reason": "ok"})
        assert gone["data"]["withdrawn"] is True


async def test_a_bot_cannot_touch_another_makers_quote_or_last_look(gateway: Gateway) -> None:
    async with bot(gateway, MAKER_A) as a, bot(gateway, MAKER_B) as b:
        shared = rfq([MAKER_A, MAKER_B])
        await publish_rfqs(gateway, shared)
        for each in (a, b):
            await each.wait_for(lambda m: m["type"] == "rfq")
        rfq_id = shared.rfq_id
        quote_id = (await a.ask("quote", {"rfq_id": rfq_id, "offer_px": "65010"}))["data"][
            "quote_id"
        ]
        for kind, data in (
            ("replace", {"rfq_id": rfq_id, "quote_id": quote_id, "offer_px": "65000.01"}),
            ("withdraw", {"rfq_id": rfq_id, "quote_id": quote_id}),
        ):
            answer = await b.ask(kind, data)
            assert answer["error"]["code"] == "not_found", answer

        only_a = rfq([MAKER_A])
        await delivered(gateway, a, only_a)
        sneaked = await b.ask("quote", {"rfq_id": only_a.rfq_id, "offer_px": "65010"})
        assert sneaked["error"]["code"] == "unknown_rfq"

        request = last_look(MAKER_A, rfq_id, quote_id)
        await gateway.publisher.publish(LASTLOOK_REQUESTS, rfq_id, request, correlation_id="t")
        await a.wait_for(lambda m: m["type"] == "last_look")
        stolen = await b.ask(
            "last_look",
            {
                "reservation_id": request.reservation_id,
                "quote_id": quote_id,
                "confirm": False,
                "reason": "not yours",
            },
        )
        assert stolen["error"]["code"] == "unknown_last_look"
        assert not [m for m in b.received if m["type"] in ("last_look", "quote_withdrawn")]
        assert await take(gateway, rfq_id, quote_id, MAKER_A) is TakeOutcome.TAKEN


async def test_a_last_look_reaches_its_maker_and_the_answer_repeats_the_price(
    gateway: Gateway,
) -> None:
    async with bot(gateway, MAKER_A) as a:
        rfq_id = str(uuid.uuid4())
        request = last_look(MAKER_A, rfq_id, "quote-1")
        await gateway.publisher.publish(LASTLOOK_REQUESTS, rfq_id, request, correlation_id="t")
        sent = await a.wait_for(lambda m: m["type"] == "last_look")
        assert sent["data"]["reservation_id"] == request.reservation_id
        assert (sent["data"]["price"], sent["data"]["maker_side"]) == ("65010", "sell")
        assert "requester" not in sent["data"]
        answer = {
            "reservation_id": request.reservation_id,
            "quote_id": "quote-1",
            "confirm": True,
            "price": "65010",
        }
        assert (await a.ask("last_look", answer))["data"]["confirmed"] is True
        again = await a.ask("last_look", answer | {"confirm": False})
        assert again["error"]["code"] == "unknown_last_look"

        def response(seen: Seen) -> bool:
            payload = seen.message.payload if seen.message is not None else None
            return isinstance(payload, events_pb2.LastLookResponse) and payload.rfq_id == rfq_id

        [seen] = await gateway.tap.wait_for(response)
        assert seen.message is not None
        published = seen.message.payload
        assert (published.maker, published.quote_id, published.price) == (
            MAKER_A,
            "quote-1",
            "65010",
        )
        assert published.confirmed


async def test_cancel_on_disconnect_withdraws_live_quotes_unless_the_bot_opted_out(
    gateway: Gateway,
) -> None:
    maker = f"MM-GC-{uuid.uuid4().hex[:6]}"
    kept, cancelled = rfq([maker]), rfq([maker])
    async with bot(gateway, maker, query="?cancel_on_disconnect=false") as stays:
        async with bot(gateway, maker) as goes:
            await publish_rfqs(gateway, kept, cancelled)
            await goes.wait_for(lambda m: m.get("data", {}).get("rfq_id") == cancelled.rfq_id)
            await stays.wait_for(lambda m: m.get("data", {}).get("rfq_id") == cancelled.rfq_id)
            kept_id = (await stays.ask("quote", {"rfq_id": kept.rfq_id, "offer_px": "65010"}))[
                "data"
            ]["quote_id"]
            gone_id = (await goes.ask("quote", {"rfq_id": cancelled.rfq_id, "offer_px": "65010"}))[
                "data"
            ]["quote_id"]
        [seen] = await gateway.tap.wait_for(withdrawn(gone_id))
        assert seen.message is not None
        assert seen.message.payload.reason == "cancel on disconnect"
    await wait_until(lambda: connected(maker) == 0)  # both gone, and their withdrawals done
    assert await take(gateway, cancelled.rfq_id, gone_id, maker) is TakeOutcome.WITHDRAWN
    assert await take(gateway, kept.rfq_id, kept_id, maker) is TakeOutcome.TAKEN


def connected(maker: str) -> float:
    return REGISTRY.get_sample_value("otc_mm_bots_connected", {"maker": maker}) or 0.0


async def test_a_bot_that_misses_heartbeats_is_dropped_and_its_quotes_withdrawn(
    gateway: Gateway,
) -> None:
    maker = f"MM-GH-{uuid.uuid4().hex[:6]}"
    async with bot(gateway, maker, heartbeats=False) as silent:
        rfq_id = await delivered(gateway, silent, rfq([maker]))
        quote_id = (await silent.ask("quote", {"rfq_id": rfq_id, "offer_px": "65010"}))["data"][
            "quote_id"
        ]
        [seen] = await gateway.tap.wait_for(withdrawn(quote_id))
        assert seen.message is not None
        assert seen.message.payload.reason == "missed heartbeats"
        await wait_until(lambda: silent.ws.close_code is not None)
        assert silent.ws.close_code == 4408
    assert await take(gateway, rfq_id, quote_id, maker) is TakeOutcome.WITHDRAWN


async def test_the_kill_switch_api_halts_a_maker_and_only_it_or_an_admin_may(
    gateway: Gateway,
) -> None:
    maker = f"MM-GK-{uuid.uuid4().hex[:6]}"

    def auth(party: str, role: Role = Role.MARKET_MAKER) -> dict[str, str]:
        return {"Authorization": f"Bearer {token(party, role)}"}

    async with bot(gateway, maker) as own, httpx.AsyncClient(base_url=gateway.http_url) as http:
        rfq_id = await delivered(gateway, own, rfq([maker]))
        quote_id = (await own.ask("quote", {"rfq_id": rfq_id, "offer_px": "65010"}))["data"][
            "quote_id"
        ]
        for headers, body, status in (
            ({}, {}, 401),
            (auth(MAKER_B), {"maker": maker}, 403),
            (auth("TRADER-A", Role.TRADER), {"maker": maker}, 403),
            (auth("ADMIN", Role.ADMIN), {}, 422),
        ):
            refused = await http.post("/v1/mm/kill", json=body, headers=headers)
            assert refused.status_code == status, refused.text
            assert refused.json()["error"]["code"]
        assert await take(gateway, rfq_id, quote_id, maker) is not TakeOutcome.WITHDRAWN

        rfq_id = await delivered(gateway, own, rfq([maker]))
        quote_id = (await own.ask("quote", {"rfq_id": rfq_id, "offer_px": "65010"}))["data"][
            "quote_id"
        ]
        killed = await http.post("/v1/mm/kill", json={}, headers=auth(maker))
        assert killed.status_code == 200
        assert killed.json() == {"maker": maker, "halted": True, "withdrawn": [quote_id]}
        await own.wait_for(lambda m: m["type"] == "quote_withdrawn")
        assert await take(gateway, rfq_id, quote_id, maker) is TakeOutcome.WITHDRAWN
        status = await http.get("/v1/mm/status", headers=auth(maker))
        assert status.json()["halted"] is True

        rfq_id = await delivered(gateway, own, rfq([maker]))
        halted = await own.ask("quote", {"rfq_id": rfq_id, "offer_px": "65010"})
        assert halted["error"]["code"] == "halted"
        reset = await http.post(
            "/v1/mm/reset", json={"maker": maker}, headers=auth("ADMIN", Role.ADMIN)
        )
        assert reset.json() == {"maker": maker, "halted": False, "was_halted": True}
        assert (await own.ask("quote", {"rfq_id": rfq_id, "offer_px": "65010"}))[
            "type"
        ] == "response"


async def test_the_gateway_serves_health_readiness_and_metrics(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.http_url) as http:
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/readyz")).status_code == 200
        assert "otc_mm_bots_connected" in (await http.get("/metrics")).text
