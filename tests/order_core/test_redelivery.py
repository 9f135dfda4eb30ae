"""Every message order_core consumed during complete lifecycles, delivered twice
more and out of order across topics, changes nothing: same states, same answers,
same credit, same ledger."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from order_core.service_layer.transaction import Dependencies
from otc.bus import topics
from otc.ids import new_id
from stack.client import TraderClient
from stack.demo import best_quote
from stack.infra.platform import Platform
from tests.e2e_helpers import base_url, token_for
from tests.kafka_tap import KafkaTap
from tests.order_core.scenario import deliver, rows

ORDER_CORE_INPUTS = (
    topics.RFQ_QUOTES,
    topics.ORDER_COMMANDS,
    topics.LASTLOOK_RESPONSES,
    topics.SETTLEMENT_EVENTS,
)


async def _lifecycles(platform: Platform, count: int) -> list[str]:
    rfq_ids = []
    async with TraderClient(base_url(platform), token_for(platform, "TRADER-B")) as trader:
        for i in range(count):
            rfq = await trader.create_rfq(
                client_rfq_id=new_id(), instrument="EUR-USD", side="sell", quantity="10000"
            )
            rfq_id = rfq["rfq_id"]
            quotes = await trader.wait_quotes(rfq_id, count=3)
            if i % 2:  # some end settled, some cancelled
                mark = trader.mark(rfq_id)
                status, body = await trader.accept(rfq_id, best_quote(quotes, "sell")["quote_id"])
                assert status == 200, body
                await trader.wait_status(rfq_id, "SETTLED", since=mark, timeout=20)
            else:
                status, body = await trader.cancel(rfq_id)
                assert status == 200, body
            rfq_ids.append(rfq_id)
    return rfq_ids


async def _settled_in_risk(core: Dependencies, rfq_ids: list[str]) -> None:
    """risk_limits frees a trade's exposure when it hears of the settlement; wait for
    that, so the snapshot does not race it."""
    for _ in range(200):
        committed = await rows(
            core,
            "SELECT reservation_id FROM risk.reservations "
            "WHERE rfq_id = ANY(:ids) AND status = 'COMMITTED'",
            ids=rfq_ids,
        )
        if not committed:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("risk_limits never heard of the settlements")


async def _snapshot(core: Dependencies, rfq_ids: list[str]) -> dict[str, Any]:
    ids = {"ids": rfq_ids}
    return {
        "orders": await rows(
            core,
            "SELECT rfq_id, state, version, reservation_id, trade_id FROM order_core.orders "
            "WHERE rfq_id = ANY(:ids) ORDER BY rfq_id",
            **ids,
        ),
        "quotes": await rows(
            core,
            "SELECT quote_id FROM order_core.quotes WHERE rfq_id = ANY(:ids) ORDER BY quote_id",
            **ids,
        ),
        "published": await rows(
            core,
            "SELECT event_id FROM order_core.outbox WHERE key = ANY(:ids) ORDER BY id",
            **ids,
        ),
        "reservations": await rows(
            core,
            "SELECT reservation_id, status FROM risk.reservations WHERE rfq_id = ANY(:ids) "
            "ORDER BY reservation_id",
            **ids,
        ),
        "credit": await rows(
            core, "SELECT party, used, frozen FROM risk.credit_lines ORDER BY party"
        ),
        "audit": await rows(
            core,
            "SELECT id, event_id, hash FROM order_core.audit_events "
            "WHERE rfq_id = ANY(:ids) ORDER BY id",
            **ids,
        ),
        "ledger": await rows(
            core,
            "SELECT trade_id, party, asset, amount FROM settlement.ledger_entries "
            "WHERE trade_id IN (SELECT trade_id FROM settlement.trades WHERE rfq_id = ANY(:ids)) "
            "ORDER BY id",
            **ids,
        ),
    }


async def test_redelivering_every_message_twice_out_of_order_changes_nothing(
    platform: Platform, core: Dependencies
) -> None:
    assert platform.endpoints is not None
    async with KafkaTap(platform.endpoints.kafka_bootstrap, *ORDER_CORE_INPUTS) as tap:
        rfq_ids = await _lifecycles(platform, 4)
    consumed = [
        s.message for s in tap.seen if s.message is not None and s.message.correlation_id in rfq_ids
    ]
    assert {m.type for m in consumed} >= {
        "otc.v1.RfqRequested",
        "otc.v1.QuoteSubmitted",
        "otc.v1.AcceptQuote",
        "otc.v1.CancelRfq",
        "otc.v1.LastLookResponse",
        "otc.v1.TradeSettled",
    }
    await _settled_in_risk(core, rfq_ids)
    before = await _snapshot(core, rfq_ids)

    again = consumed * 2
    random.Random(7).shuffle(again)
    for message in again:
        await deliver(core, message)

    assert await _snapshot(core, rfq_ids) == before
