"""The trader API answers bad input with clear 4xx JSON errors and keeps parties apart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from otc.auth import Role
from otc.bus import topics
from otc.bus.producer import Publisher
from otc.ids import new_id
from stack.infra.platform import Platform
from tests.e2e_helpers import base_url, token_for
from tests.kafka_tap import KafkaTap


@pytest.fixture
async def api(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url(platform), timeout=10) as client:
        yield client


def _auth(platform: Platform, party: str = "TRADER-A", role: Role = Role.TRADER) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(platform, party, role)}"}


def _body(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "client_rfq_id": new_id(),
        "instrument": "BTC-USD",
        "side": "buy",
        "quantity": "1.5",
    }
    body.update(over)
    return body


def _assert_error(response: httpx.Response, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"]
    if code is not None:
        assert error["code"] == code


async def _status_eventually(
    api: httpx.AsyncClient, platform: Platform, rfq_id: str, status: str, timeout: float = 15
) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        rfq = (await api.get(f"/v1/rfqs/{rfq_id}", headers=_auth(platform))).json()
        if rfq["status"] == status:
            return True
        await asyncio.sleep(0.1)
    return False


async def test_a_request_without_a_token_is_401(api: httpx.AsyncClient) -> None:
    _assert_error(await api.post("/v1/rfqs", json=_body()), 401, "unauthorized")


async def test_a_forged_token_is_401(api: httpx.AsyncClient) -> None:
    headers = {"Authorization": "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJUUkFERVItQSJ9."}
    _assert_error(await api.get("/v1/rfqs", headers=headers), 401, "unauthorized")


async def test_a_malformed_body_is_422(api: httpx.AsyncClient, platform: Platform) -> None:
    response = await api.post(
        "/v1/rfqs",
        content=b"{not json",
        headers=_auth(platform) | {"Content-Type": "application/json"},
    )
    _assert_error(response, 422, "invalid_request")


@pytest.mark.parametrize(
    ("over", "code"),
    [
        ({"instrument": "DOGE-USD"}, "unknown_instrument"),
        ({"quantity": "-1"}, "invalid_quantity"),
        ({"quantity": "0"}, "invalid_quantity"),
        ({"quantity": "lots"}, "invalid_quantity"),
        ({"quantity": 1.5}, "invalid_request"),  # a JSON number could already be inexact
        ({"side": "sideways"}, "invalid_request"),
        ({"surprise": True}, "invalid_request"),
    ],
)
async def test_bad_rfq_fields_are_refused_with_their_code(
    api: httpx.AsyncClient, platform: Platform, over: dict[str, Any], code: str
) -> None:
    response = await api.post("/v1/rfqs", json=_body(**over), headers=_auth(platform))
    _assert_error(response, 422, code)


async def test_the_same_client_rfq_id_returns_the_same_rfq_and_a_different_body_conflicts(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    body = _body()
    first = await api.post("/v1/rfqs", json=body, headers=_auth(platform))
    again = await api.post("/v1/rfqs", json=body, headers=_auth(platform))
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["rfq_id"] == again.json()["rfq_id"]
    changed = await api.post("/v1/rfqs", json=body | {"quantity": "2"}, headers=_auth(platform))
    _assert_error(changed, 409, "client_rfq_id_reused")


async def test_another_traders_rfq_is_invisible(api: httpx.AsyncClient, platform: Platform) -> None:
    created = await api.post("/v1/rfqs", json=_body(), headers=_auth(platform, "TRADER-A"))
    rfq_id = created.json()["rfq_id"]
    other = _auth(platform, "TRADER-B")
    _assert_error(await api.get(f"/v1/rfqs/{rfq_id}", headers=other), 404, "not_found")
    accept = await api.post(f"/v1/rfqs/{rfq_id}/accept", json={"quote_id": "x"}, headers=other)
    _assert_error(accept, 404, "not_found")
    _assert_error(await api.post(f"/v1/rfqs/{rfq_id}/cancel", headers=other), 404, "not_found")
    listed = (await api.get("/v1/rfqs", headers=other)).json()["items"]
    assert rfq_id not in {r["rfq_id"] for r in listed}


async def test_a_market_maker_cannot_ask_for_quotes(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    response = await api.post(
        "/v1/rfqs", json=_body(), headers=_auth(platform, "MM-1", Role.MARKET_MAKER)
    )
    _assert_error(response, 403, "forbidden")


async def test_a_trader_cancels_an_open_rfq(api: httpx.AsyncClient, platform: Platform) -> None:
    created = await api.post("/v1/rfqs", json=_body(), headers=_auth(platform))
    rfq_id = created.json()["rfq_id"]
    response = await api.post(f"/v1/rfqs/{rfq_id}/cancel", headers=_auth(platform))
    # 202 is an honest answer when order_core is slower than the edge's 2 s wait
    assert response.status_code in (200, 202), response.text
    if response.status_code == 200:
        assert response.json()["status"] == "CANCELLED"
    assert await _status_eventually(api, platform, rfq_id, "CANCELLED")
    again = await api.post(f"/v1/rfqs/{rfq_id}/cancel", headers=_auth(platform))
    _assert_error(again, 409, "wrong_state")


async def test_the_list_pages_with_a_cursor(api: httpx.AsyncClient, platform: Platform) -> None:
    headers = _auth(platform, "TRADER-B")
    made = [
        (await api.post("/v1/rfqs", json=_body(), headers=headers)).json()["rfq_id"]
        for _ in range(3)
    ]
    first = (await api.get("/v1/rfqs?limit=2", headers=headers)).json()
    second = (
        await api.get(f"/v1/rfqs?limit=2&cursor={first['next_cursor']}", headers=headers)
    ).json()
    listed = [r["rfq_id"] for r in first["items"] + second["items"]]
    assert listed[:3] == sorted(made, reverse=True)
    assert len(set(listed)) == len(listed)


async def test_an_undecodable_command_goes_to_the_dlq_and_order_core_keeps_going(
    platform: Platform,
) -> None:
    assert platform.endpoints is not None
    publisher = Publisher(platform.endpoints.kafka_bootstrap, "test")
    await publisher.start()
    try:
        async with KafkaTap(
            platform.endpoints.kafka_bootstrap, topics.dlq(topics.ORDER_COMMANDS)
        ) as tap:
            await publisher.send_raw(topics.ORDER_COMMANDS, "poison", b"\x00not an envelope")
            [seen] = await tap.wait_for(lambda s: s.key == "poison")
        assert seen.raw == b"\x00not an envelope"
        assert b"envelope" in seen.headers["dlq.reason"]
    finally:
        await publisher.stop()
    async with httpx.AsyncClient(base_url=base_url(platform), timeout=10) as api:
        created = await api.post("/v1/rfqs", json=_body(), headers=_auth(platform))
        rfq_id = created.json()["rfq_id"]
        cancel = await api.post(f"/v1/rfqs/{rfq_id}/cancel", headers=_auth(platform))
    assert cancel.status_code in (200, 409), cancel.text


async def test_an_auditor_reads_any_rfq_and_writes_nothing(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    created = await api.post("/v1/rfqs", json=_body(), headers=_auth(platform, "TRADER-A"))
    rfq_id = created.json()["rfq_id"]
    auditor = _auth(platform, "AUDITOR", Role.AUDITOR)
    read = await api.get(f"/v1/rfqs/{rfq_id}", headers=auditor)
    assert read.status_code == 200
    assert read.json()["rfq_id"] == rfq_id
    _assert_error(await api.post("/v1/rfqs", json=_body(), headers=auditor), 403, "forbidden")
    accept = await api.post(f"/v1/rfqs/{rfq_id}/accept", json={"quote_id": "x"}, headers=auditor)
    _assert_error(accept, 403, "forbidden")
    _assert_error(await api.post(f"/v1/rfqs/{rfq_id}/cancel", headers=auditor), 403, "forbidden")


async def test_a_maker_cannot_read_an_rfq_addressed_to_it(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    created = await api.post("/v1/rfqs", json=_body(), headers=_auth(platform, "TRADER-A"))
    maker = _auth(platform, "MM-1", Role.MARKET_MAKER)
    read = await api.get(f"/v1/rfqs/{created.json()['rfq_id']}", headers=maker)
    _assert_error(read, 404, "not_found")
