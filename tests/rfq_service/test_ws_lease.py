"""A trader's socket lives only as long as its token: it is closed with
`token_expired` (4401) when the token expires, unless the trader sent a fresh
token of its own in an `auth` request; a token of anyone else renews nothing."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import websockets

from otc.auth import Role, mint_token
from otc.ids import new_id
from stack.client import ApiError, TraderClient
from stack.infra.platform import Platform
from tests.e2e_helpers import base_url
from tests.rfq_service.test_ws import _request

# long enough for a loaded machine to open the socket and ask a few things first
SHORT = timedelta(seconds=8)


def _token(platform: Platform, party: str, ttl: timedelta, role: Role = Role.TRADER) -> str:
    secret = platform.settings.jwt_secret.get_secret_value()
    return mint_token(party, role, secret=secret, now=datetime.now(UTC), ttl=ttl)


async def _open(platform: Platform, token: str) -> Any:
    url = base_url(platform).replace("http", "ws", 1) + "/v1/ws"
    ws = await websockets.connect(url, additional_headers={"Authorization": f"Bearer {token}"})
    welcome = json.loads(await asyncio.wait_for(ws.recv(), 15))
    assert welcome["type"] == "welcome", welcome
    return ws


async def _until_closed(ws: Any) -> list[dict[str, Any]]:
    """What the server sent until it closed the socket (a TimeoutError if it never does)."""
    received = []
    async with asyncio.timeout(30):
        while True:
            try:
                received.append(json.loads(await ws.recv()))
            except websockets.ConnectionClosed:
                return received


async def test_a_socket_is_closed_when_its_token_expires(platform: Platform) -> None:
    ws = await _open(platform, _token(platform, "TRADER-A", SHORT))
    try:
        assert (await _request(ws, "ping", {}))["data"] == {"pong": True}
        received = await _until_closed(ws)
        assert ws.close_code == 4401
        [expired] = [m for m in received if m["type"] == "error"]
        assert expired["error"]["code"] == "token_expired"
    finally:
        await ws.close()


async def test_a_fresh_token_keeps_the_socket_open_past_the_first_ones_expiry(
    platform: Platform,
) -> None:
    ws = await _open(platform, _token(platform, "TRADER-A", SHORT))
    try:
        renewed = await _request(
            ws, "auth", {"token": _token(platform, "TRADER-A", timedelta(hours=1))}
        )
        assert renewed["status"] == 200
        expires_at = datetime.fromisoformat(renewed["data"]["expires_at"])
        assert expires_at > datetime.now(UTC) + timedelta(minutes=50)
        await asyncio.sleep(SHORT.total_seconds() + 2)
        assert (await _request(ws, "ping", {}))["data"] == {"pong": True}
    finally:
        await ws.close()


async def test_a_token_of_anyone_else_renews_nothing(platform: Platform) -> None:
    ws = await _open(platform, _token(platform, "TRADER-A", SHORT))
    try:
        hour = timedelta(hours=1)
        for token, code in (
            (_token(platform, "TRADER-B", hour), "forbidden"),
            (_token(platform, "TRADER-A", hour, Role.AUDITOR), "forbidden"),
            ("not-a-jwt", "unauthorized"),
        ):
            refused = await _request(ws, "auth", {"token": token})
            assert refused["error"]["code"] == code, refused
        assert (await _request(ws, "auth", {}))["error"]["code"] == "invalid_request"
        await _until_closed(ws)
        assert ws.close_code == 4401
    finally:
        await ws.close()


async def test_the_trader_client_renews_its_socket_and_its_rest_calls(platform: Platform) -> None:
    async with TraderClient(base_url(platform), _token(platform, "TRADER-A", SHORT)) as trader:
        expires_at = await trader.renew(_token(platform, "TRADER-A", timedelta(hours=1)))
        assert datetime.fromisoformat(expires_at) > datetime.now(UTC) + timedelta(minutes=50)
        await asyncio.sleep(SHORT.total_seconds() + 2)
        rfq = await trader.create_rfq(
            client_rfq_id=new_id(), instrument="BTC-USD", side="buy", quantity="1"
        )
        await trader.wait_quotes(rfq["rfq_id"], 1)  # pushed on the socket opened first
        assert trader.resumes == 0
        with pytest.raises(ApiError) as refused:
            await trader.renew(_token(platform, "TRADER-B", timedelta(hours=1)))
        assert refused.value.status == 403
