"""An anonymous RFQ never names its requester to makers, in any message they
receive, while order_core and the auditors still know who asked."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx

from otc.auth import Role
from otc.bus import topics
from otc.contracts import events_pb2 as ev
from otc.ids import new_id
from stack.infra.platform import Platform
from tests.e2e_helpers import base_url, token_for
from tests.kafka_tap import KafkaTap, Seen

TO_MAKERS = (topics.RFQ_REQUESTS, topics.LASTLOOK_REQUESTS)


async def _quoted_and_accepted(
    http: httpx.AsyncClient, headers: dict[str, str], anonymous: bool
) -> str:
    body = {
        "client_rfq_id": new_id(),
        "instrument": "BTC-USD",
        "side": "buy",
        "quantity": "0.5",
        "anonymous": anonymous,
    }
    created = await http.post("/v1/rfqs", json=body, headers=headers)
    assert created.status_code == 201, created.text
    rfq_id: str = created.json()["rfq_id"]
    async with asyncio.timeout(20):
        while not (rfq := (await http.get(f"/v1/rfqs/{rfq_id}", headers=headers)).json())["quotes"]:  # noqa: ASYNC110 - polling the API as a client would
            await asyncio.sleep(0.05)
    accepted = await http.post(
        f"/v1/rfqs/{rfq_id}/accept",
        json={"quote_id": rfq["quotes"][0]["quote_id"]},
        headers=headers,
    )
    assert accepted.status_code in (200, 202), accepted.text
    return rfq_id


def _last_look_of(rfq_id: str) -> Callable[[Seen], bool]:
    return lambda seen: seen.key == rfq_id and seen.topic == topics.LASTLOOK_REQUESTS


async def test_no_message_to_a_maker_names_the_requester_of_an_anonymous_rfq(
    platform: Platform,
) -> None:
    assert platform.endpoints is not None
    trader = {"Authorization": f"Bearer {token_for(platform, 'TRADER-B')}"}
    auditor = {"Authorization": f"Bearer {token_for(platform, 'AUDITOR', Role.AUDITOR)}"}
    async with (
        KafkaTap(platform.endpoints.kafka_bootstrap, *TO_MAKERS, topics.ORDER_COMMANDS) as tap,
        httpx.AsyncClient(base_url=base_url(platform), timeout=15) as http,
    ):
        hidden = await _quoted_and_accepted(http, trader, anonymous=True)
        named = await _quoted_and_accepted(http, trader, anonymous=False)
        for rfq_id in (hidden, named):
            await tap.wait_for(_last_look_of(rfq_id))
        events = await http.get("/v1/audit/events", params={"rfq_id": hidden}, headers=auditor)
    to_makers = {
        rfq_id: [s.raw or b"" for s in tap.seen if s.key == rfq_id and s.topic in TO_MAKERS]
        for rfq_id in (hidden, named)
    }
    assert len(to_makers[hidden]) >= 2, "the RFQ and its last look reached the makers"
    assert not any(b"TRADER-B" in raw for raw in to_makers[hidden])
    assert any(b"TRADER-B" in raw for raw in to_makers[named]), "the check can see a name"

    [full] = [
        s.message.payload
        for s in tap.seen
        if s.key == hidden
        and s.topic == topics.ORDER_COMMANDS
        and s.message is not None
        and s.message.type == "otc.v1.RfqRequested"
    ]
    assert isinstance(full, ev.RfqRequested)
    assert full.requester == "TRADER-B", "order_core is told who asked"
    assert events.status_code == 200, events.text
    assert {e["party"] for e in events.json()["items"]} == {"TRADER-B"}, "auditors see who asked"
