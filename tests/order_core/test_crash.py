"""kill -9 of order_core while last looks are in flight, kept down until every
window has closed, then a restart: a maker's answer sent in time is honoured late
(a confirmation settles the order, a rejection gives it back), every accept is
answered, and no credit stays frozen."""

from __future__ import annotations

import asyncio
import time

import asyncpg

from otc.bus.topics import LASTLOOK_RESPONSES
from otc.contracts import events_pb2
from otc.ids import new_id
from stack.client import TraderClient
from stack.demo import best_quote
from stack.infra.platform import Platform
from tests.e2e_helpers import SERVICE_ENV, base_url, token_for
from tests.kafka_tap import KafkaTap

DEALS = 4
LAST_LOOK_S = int(SERVICE_ENV["OTC_LAST_LOOK_WINDOW_MS"]) / 1000
# an order still on its way through last look or settlement
IN_FLIGHT = frozenset({"PENDING_CONFIRMATION", "CONFIRMED"})


async def _quoted(trader: TraderClient) -> tuple[str, str]:
    rfq = await trader.create_rfq(
        client_rfq_id=new_id(),
        instrument="ETH-USD",
        side="buy",
        quantity="1",
        response_window_ms=120_000,
    )
    quotes = await trader.wait_quotes(rfq["rfq_id"], count=1, timeout=60)
    return rfq["rfq_id"], best_quote(quotes, "buy")["quote_id"]


async def _accept(trader: TraderClient, rfq_id: str, quote_id: str) -> tuple[int, str]:
    status, body = await trader.accept(rfq_id, quote_id)
    # while order_core is down an accept is answered 202, or refused once the quote
    # expired; nothing else is acceptable
    assert status in (200, 202) or body["error"]["code"] == "quote_expired", body
    return status, body.get("command_id", "")


async def test_order_core_down_past_the_last_look_honours_every_timely_answer(
    platform: Platform,
) -> None:
    assert platform.endpoints is not None
    db = await asyncpg.connect(platform.endpoints.database_url)
    try:
        async with (
            KafkaTap(platform.endpoints.kafka_bootstrap, LASTLOOK_RESPONSES) as tap,
            TraderClient(base_url(platform), token_for(platform, "TRADER-A")) as trader,
        ):
            deals = await asyncio.gather(*(_quoted(trader) for _ in range(DEALS)))
            accepts = [asyncio.create_task(_accept(trader, *deal)) for deal in deals]
            await asyncio.wait(accepts, return_when=asyncio.FIRST_COMPLETED)
            platform.children["order-core"].kill()
            # the makers answer within their window; order_core sees the answers only
            # once every window has closed
            await asyncio.sleep(LAST_LOOK_S + 1)
            await platform.restart("order-core", timeout=90)
            answers = await asyncio.gather(*accepts)
            assert any(status == 200 for status, _ in answers), "no order was pending at the kill"

            for (rfq_id, _), (status, command_id) in zip(deals, answers, strict=True):
                if status == 202:  # the verdict came after the restart
                    await _until_processed(db, command_id)
                state = await _settled_or_back(db, rfq_id)
                answered = await _first_answer(tap, rfq_id)
                if answered is not None and answered.confirmed:
                    assert state == "SETTLED", (rfq_id, status, state)
                else:
                    assert state in ("QUOTED", "EXPIRED"), (rfq_id, status, state, answered)
            assert any(m.payload.confirmed for m in tap.payloads("otc.v1.LastLookResponse")), (
                "no maker confirmed a last look: nothing was proven"
            )
        await _no_credit_frozen(db, [rfq_id for rfq_id, _ in deals])
    finally:
        await db.close()


async def _first_answer(
    tap: KafkaTap, rfq_id: str, timeout: float = 5
) -> events_pb2.LastLookResponse | None:
    """The maker's first answer for `rfq_id`; the tap may read it after order_core
    did, so it is given a moment. None if there was no last look to answer."""
    deadline = time.monotonic() + timeout
    while True:
        for message in tap.payloads("otc.v1.LastLookResponse"):
            answer = message.payload
            assert isinstance(answer, events_pb2.LastLookResponse)
            if answer.rfq_id == rfq_id:
                return answer
        if time.monotonic() > deadline:
            return None
        await asyncio.sleep(0.1)


async def _settled_or_back(db: asyncpg.Connection, rfq_id: str, timeout: float = 60) -> str:
    """The order's state once it has left last look and settlement."""
    deadline = time.monotonic() + timeout
    while True:
        state = str(
            await db.fetchval("SELECT state FROM order_core.orders WHERE rfq_id = $1", rfq_id)
        )
        if state not in IN_FLIGHT:
            return state
        assert time.monotonic() < deadline, f"{rfq_id} stuck in {state}"
        await asyncio.sleep(0.1)


async def _no_credit_frozen(db: asyncpg.Connection, rfq_ids: list[str]) -> None:
    """Credit of an order given back is released right after its state is recorded."""
    deadline = time.monotonic() + 30
    while True:
        frozen = await db.fetch(
            "SELECT rfq_id FROM risk.reservations WHERE rfq_id = ANY($1) AND status = 'FROZEN'",
            rfq_ids,
        )
        if not frozen:
            return
        assert time.monotonic() < deadline, f"credit left frozen: {frozen}"
        await asyncio.sleep(0.2)


async def _until_processed(db: asyncpg.Connection, command_id: str) -> None:
    deadline = time.monotonic() + 60
    while not await db.fetchval(
        "SELECT 1 FROM order_core.processed_events WHERE event_id = $1", command_id
    ):
        assert time.monotonic() < deadline, f"command {command_id} never processed"
        await asyncio.sleep(0.1)
