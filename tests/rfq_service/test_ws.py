"""The trader WebSocket: numbered pushes, request ids, bad input, resume after a
drop, and a slow client cut off with a reason instead of growing memory."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy.ext.asyncio import AsyncEngine

from otc.auth import Principal, Role, verify_token
from otc.bus.requests import Replies
from otc.clock import SystemClock
from otc.http_server import http_server
from otc.ids import new_id
from otc.rate_limit import TokenBuckets
from rfq_service.entrypoints.http import create_app
from rfq_service.entrypoints.hub import Hub
from rfq_service.entrypoints.ws import SocketDeps
from rfq_service.service_layer.edge import Edge
from rfq_service.service_layer.prices import PriceBoard
from stack.infra.platform import Platform
from stack.infra.processes import free_port
from tests.e2e_helpers import base_url, token_for

Ws = Any


def _url(platform: Platform, **params: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return base_url(platform).replace("http", "ws", 1) + "/v1/ws" + (f"?{query}" if query else "")


async def _connect(platform: Platform, party: str = "TRADER-A", **params: str) -> Ws:
    token = token_for(platform, party)
    return await websockets.connect(
        _url(platform, **params), additional_headers={"Authorization": f"Bearer {token}"}
    )


async def _next(ws: Ws, kind: str | None = None, timeout: float = 15) -> dict[str, Any]:
    """The next message (of `kind`, skipping heartbeats and others)."""
    async with asyncio.timeout(timeout):
        while True:
            message: dict[str, Any] = json.loads(await ws.recv())
            if message["type"] == "heartbeat":
                continue
            if kind is None or message["type"] == kind:
                return message


async def _request(ws: Ws, kind: str, data: Any) -> dict[str, Any]:
    request_id = new_id()
    await ws.send(json.dumps({"type": kind, "request_id": request_id, "data": data}))
    async with asyncio.timeout(15):
        while True:
            message = await _next(ws)
            if message.get("request_id") == request_id:
                return message


def _rfq(**over: Any) -> dict[str, Any]:
    return {
        "client_rfq_id": new_id(),
        "instrument": "BTC-USD",
        "side": "buy",
        "quantity": "1",
        **over,
    }


async def test_pushes_and_answers_are_numbered_in_order_and_echo_the_request_id(
    platform: Platform,
) -> None:
    async with await _connect(platform) as ws:
        welcome = await _next(ws, "welcome")
        assert welcome["party"] == "TRADER-A"
        assert welcome["session_id"]
        assert welcome["after_seq"] == 0
        created = await _request(ws, "create_rfq", _rfq())
        assert created["type"] == "response"
        assert created["status"] == 201
        rfq_id = created["data"]["rfq_id"]
        seqs = [created["seq"]]
        quote = await _next(ws, "quote")
        seqs.append(quote["seq"])
        assert quote["data"]["rfq_id"] == rfq_id
        pong = await _request(ws, "ping", {})
        seqs.append(pong["seq"])
        assert seqs == sorted(seqs)
        assert len(set(seqs)) == 3


async def test_bad_input_gets_an_error_and_the_connection_stays(platform: Platform) -> None:
    async with await _connect(platform) as ws:
        await _next(ws, "welcome")
        await ws.send("{not json")
        assert (await _next(ws, "error"))["error"]["code"] == "invalid_message"
        await ws.send(b"\x00\x01")
        assert (await _next(ws, "error"))["error"]["code"] == "invalid_message"
        unknown = await _request(ws, "launch_missiles", {})
        assert unknown["type"] == "error"
        assert unknown["error"]["code"] == "unknown_type"
        invalid = await _request(ws, "create_rfq", _rfq(quantity=2.5))
        assert invalid["error"]["code"] == "invalid_request"
        assert "quantity" in invalid["error"]["message"]
        extra = await _request(ws, "create_rfq", _rfq(price_hint="1"))
        assert extra["error"]["code"] == "invalid_request"
        missing = await _request(ws, "accept", {"quote_id": "q"})
        assert missing["error"]["code"] == "invalid_request"
        assert (await _request(ws, "ping", {}))["data"] == {"pong": True}


async def test_a_bad_token_is_refused_with_a_reason(platform: Platform) -> None:
    url = _url(platform, token="not-a-jwt")
    async with websockets.connect(url) as ws:
        error = await _next(ws, "error")
        assert error["error"]["code"] == "unauthorized"
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401


@pytest.mark.parametrize("role", [Role.MARKET_MAKER, Role.AUDITOR])
async def test_only_traders_may_open_the_trader_socket(platform: Platform, role: Role) -> None:
    token = token_for(platform, "MM-1" if role is Role.MARKET_MAKER else "AUDITOR", role)
    async with websockets.connect(_url(platform, token=token)) as ws:
        assert (await _next(ws, "error"))["error"]["code"] == "forbidden"
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4403


async def test_another_trader_sees_nothing_of_an_rfq_and_cannot_touch_it(
    platform: Platform,
) -> None:
    async with (
        await _connect(platform, "TRADER-A") as trader,
        await _connect(platform, "TRADER-B") as other,
    ):
        await _next(trader, "welcome")
        await _next(other, "welcome")
        created = await _request(trader, "create_rfq", _rfq())
        await _next(trader, "quote")
        stolen = await _request(other, "cancel", {"rfq_id": created["data"]["rfq_id"]})
        assert stolen["error"]["code"] == "not_found"
        with pytest.raises(TimeoutError):
            await _next(other, "quote", timeout=1.0)


async def test_a_client_resuming_with_its_last_seq_gets_exactly_what_it_missed(
    platform: Platform,
) -> None:
    ws = await _connect(platform)
    welcome = await _next(ws, "welcome")
    created = await _request(ws, "create_rfq", _rfq())
    rfq_id = created["data"]["rfq_id"]
    quote = await _next(ws, "quote")
    last_seq = quote["seq"]
    await ws.close()

    # While it is away, the trader cancels over REST: its pushes go to the session.
    cancel = await _cancel_over_rest(platform, rfq_id)
    assert cancel == 200

    async with await _connect(
        platform, session_id=welcome["session_id"], last_seq=str(last_seq)
    ) as again:
        resumed = await _next(again, "welcome")
        assert resumed["resumed"] is True
        assert resumed["session_id"] == welcome["session_id"]
        replayed: list[dict[str, Any]] = []
        async with asyncio.timeout(15):
            while not any(
                m["type"] == "order" and m["data"]["status"] == "CANCELLED" for m in replayed
            ):
                replayed.append(await _next(again))
    seqs = [m["seq"] for m in replayed]
    assert seqs == list(range(last_seq + 1, last_seq + 1 + len(seqs)))
    assert all(m["data"]["rfq_id"] == rfq_id for m in replayed if m["type"] in ("quote", "order"))


async def test_an_unknown_session_falls_back_to_a_snapshot_of_the_callers_rfqs(
    platform: Platform,
) -> None:
    async with await _connect(platform) as ws:
        await _next(ws, "welcome")
        created = await _request(ws, "create_rfq", _rfq())
        await _next(ws, "quote")
    async with await _connect(platform, session_id="gone", last_seq="7") as again:
        welcome = await _next(again, "welcome")
        assert welcome["resumed"] is False
        assert "snapshot" in welcome["resync_reason"]
        snapshot = await _next(again, "snapshot")
    rfqs = {r["rfq_id"]: r for r in snapshot["data"]["rfqs"]}
    mine = rfqs[created["data"]["rfq_id"]]
    assert mine["quotes"], "the snapshot carries the quotes received while away"
    assert all(r["rfq_id"] for r in rfqs.values())


async def test_another_partys_session_cannot_be_resumed(platform: Platform) -> None:
    async with await _connect(platform, "TRADER-A") as ws:
        welcome = await _next(ws, "welcome")
    async with await _connect(
        platform, "TRADER-B", session_id=welcome["session_id"], last_seq="0"
    ) as thief:
        assert (await _next(thief, "welcome"))["resumed"] is False


async def _cancel_over_rest(platform: Platform, rfq_id: str) -> int:
    token = token_for(platform, "TRADER-A")
    async with httpx.AsyncClient(base_url=base_url(platform), timeout=15) as http:
        response = await http.post(
            f"/v1/rfqs/{rfq_id}/cancel", headers={"Authorization": f"Bearer {token}"}
        )
    return response.status_code


# -- a slow client, against an edge app served in this process ----------------


@dataclass
class LocalEdge:
    """An edge app served in this process, on the platform's database, with a hub
    and limits the test controls."""

    url: str
    hub: Hub
    board: PriceBoard


@pytest.fixture
async def local_edge(launcher: Platform, engine: AsyncEngine) -> AsyncIterator[LocalEdge]:
    secret = launcher.settings.jwt_secret.get_secret_value()

    def verify(token: str) -> Principal:
        return verify_token(token, secret=secret)

    hub, board = Hub(replay_limit=100_000), PriceBoard()
    buckets = TokenBuckets(rate_per_s=2, burst=5)
    edge = Edge(engine=engine, replies=Replies(), clock=SystemClock(), reply_timeout_s=1.0)
    deps = SocketDeps(
        edge=edge,
        hub=hub,
        verify=verify,
        makers=("MM-1",),
        buckets=buckets,
        prices=board,
        price_max_hz=10,
        queue_limit=50,
    )
    app = create_app(
        edge=edge, socket=deps, verify=verify, buckets=buckets, makers=("MM-1",), ready=lambda: True
    )
    port = free_port()
    server = http_server(app, "127.0.0.1", port)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
            await asyncio.sleep(0.01)
    try:
        yield LocalEdge(f"http://127.0.0.1:{port}", hub, board)
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_slow_client_is_disconnected_with_a_reason_and_can_resume_the_rest(
    launcher: Platform, local_edge: LocalEdge
) -> None:
    url, hub = local_edge.url.replace("http", "ws", 1) + "/v1/ws", local_edge.hub
    party = f"SLOW-{new_id()[-6:]}"
    token = token_for(launcher, party, Role.TRADER)
    headers = {"Authorization": f"Bearer {token}"}
    # A small receive window and no reading: the server's writes back up quickly.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    host, port = url.removeprefix("ws://").split("/")[0].split(":")
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    ws = await websockets.connect(
        url, additional_headers=headers, max_queue=1, sock=sock, compression=None
    )
    pushed = 0
    padding = os.urandom(1000).hex()  # incompressible, should compression be on
    for _ in range(400):
        for _ in range(50):
            pushed += 1
            hub.push(party, {"type": "order", "data": {"n": pushed, "padding": padding}})
        await asyncio.sleep(0.005)
        if not any(s.connection is not None for s in hub.sessions_of(party)):
            break
    sessions = hub.sessions_of(party)
    assert len(sessions) == 1
    assert sessions[0].connection is None, "the slow client was cut off"
    assert pushed < 20_000, "cut off while the pushes were still coming"

    welcome_raw, received, close = await _read_until_closed(ws)
    assert close is not None
    assert close.code == 1008
    assert "too slow" in close.reason
    assert welcome_raw is not None
    assert len(received) < pushed

    last_seq = received[-1]["seq"] if received else 0
    async with websockets.connect(
        f"{url}?session_id={welcome_raw['session_id']}&last_seq={last_seq}",
        additional_headers=headers,
        max_size=2**24,
    ) as again:
        assert (await _next(again, "welcome"))["resumed"] is True
        rest = [await _next(again, "order") for _ in range(pushed - len(received))]
    numbers = [m["data"]["n"] for m in received + rest]
    assert numbers == list(range(1, pushed + 1)), "nothing lost, nothing twice, in order"


async def _read_until_closed(ws: Ws) -> tuple[dict[str, Any] | None, list[dict[str, Any]], Any]:
    """(welcome, order messages, the close frame received) of a connection the
    server closes."""
    welcome: dict[str, Any] | None = None
    received: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(20):
            while True:
                message = json.loads(await ws.recv())
                if message["type"] == "welcome":
                    welcome = message
                elif message["type"] == "order":
                    received.append(message)
    except websockets.ConnectionClosed as closed:
        return welcome, received, closed.rcvd


async def test_a_party_over_its_rate_is_answered_429_with_retry_after(
    launcher: Platform, local_edge: LocalEdge
) -> None:
    party = f"BUSY-{new_id()[-6:]}"
    headers = {"Authorization": f"Bearer {token_for(launcher, party)}"}
    other = {"Authorization": f"Bearer {token_for(launcher, party + '-2')}"}
    async with httpx.AsyncClient(base_url=local_edge.url, timeout=10) as http:
        statuses = [(await http.get("/v1/rfqs", headers=headers)) for _ in range(8)]
        assert [r.status_code for r in statuses[:5]] == [200] * 5, "the burst goes through"
        limited = statuses[-1]
        assert limited.status_code == 429
        assert limited.json()["error"]["code"] == "rate_limited"
        assert int(limited.headers["Retry-After"]) >= 1
        assert (await http.get("/v1/rfqs", headers=other)).status_code == 200, "per party"
    async with websockets.connect(
        local_edge.url.replace("http", "ws", 1) + "/v1/ws", additional_headers=headers
    ) as ws:
        await _next(ws, "welcome")
        refused = await _request(ws, "ping", {})
        assert refused["error"]["code"] == "rate_limited"
        assert refused["retry_after"] > 0


async def test_price_subscriptions_send_changes_only_at_a_capped_rate(
    launcher: Platform, local_edge: LocalEdge
) -> None:
    headers = {"Authorization": f"Bearer {token_for(launcher, f'PX-{new_id()[-6:]}')}"}
    local_edge.board.on_tick("ETH-USD", Decimal("3200.5"), SystemClock().now())
    async with websockets.connect(
        local_edge.url.replace("http", "ws", 1) + "/v1/ws", additional_headers=headers
    ) as ws:
        await _next(ws, "welcome")
        bad = await _request(ws, "subscribe_prices", {"instruments": ["DOGE-USD"]})
        assert bad["error"]["code"] == "unknown_instrument"
        await ws.send(
            json.dumps(
                {
                    "type": "subscribe_prices",
                    "request_id": "s",
                    "data": {"instruments": ["ETH-USD"]},
                }
            )
        )
        first, subscribed = await _next(ws), await _next(ws)
        assert first["type"] == "price", "the current price comes at once"
        assert first["data"]["mid"] == "3200.5"
        assert subscribed["data"] == {"instruments": ["ETH-USD"]}
        burst_start = asyncio.get_running_loop().time()
        for i in range(1, 201):
            local_edge.board.on_tick("ETH-USD", Decimal("3200") + i, SystemClock().now())
            await asyncio.sleep(0.001)
        burst = asyncio.get_running_loop().time() - burst_start
        prices = []
        with contextlib.suppress(TimeoutError):
            while True:
                prices.append(await _next(ws, "price", timeout=0.5))
    mids = [p["data"]["mid"] for p in prices]
    assert mids[-1] == "3400", "the latest price arrives"
    assert len(mids) <= burst * 10 + 2, f"{len(mids)} prices in {burst:.2f}s exceeds 10 Hz"
    assert len(set(mids)) == len(mids), "only changes are sent"


async def test_a_party_holds_at_most_its_sessions_and_a_kept_one_makes_room(
    platform: Platform,
) -> None:
    party = f"TRADER-S-{new_id()[-6:]}"
    cap = 50  # OTC_WS_MAX_SESSIONS's default, which the test platform runs with
    sockets = [await _connect(platform, party) for _ in range(cap)]
    try:
        welcomes = [await _next(ws, "welcome") for ws in sockets]
        async with await _connect(platform, party) as refused:
            error = await _next(refused, "error")
            assert error["error"]["code"] == "too_many_sessions"
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await refused.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4429
        # another party is not counted against this one
        async with await _connect(platform) as other:
            assert (await _next(other, "welcome"))["party"] == "TRADER-A"
        # a closed socket's session is kept for resuming, and makes room when needed
        await sockets.pop(0).close()
        assert await _admitted_once_detached(platform, party)
        gone = welcomes[0]
        async with await _connect(
            platform, party, session_id=gone["session_id"], last_seq=str(gone["after_seq"])
        ) as late:
            assert (await _next(late, "welcome"))["resumed"] is False
    finally:
        for ws in sockets:
            await ws.close()


async def _admitted_once_detached(platform: Platform, party: str) -> bool:
    """Whether a new session of `party` is let in, once the edge has seen the socket
    closed just before (it learns of it a moment after the client does)."""
    for _ in range(50):
        async with await _connect(platform, party) as ws:
            if (await _next(ws))["type"] == "welcome":
                return True
        await asyncio.sleep(0.1)
    return False
