"""End to end, every service its own process: once settlement has booked an RFQ's
trade, the credit it used is available again on both sides.

The trader is made for this test (its own lines and balances), so that its lines
tell exactly what this one trade did; the maker's shared gross line is checked
through the books, which must count no settled reservation.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal
from typing import Any

import grpc
from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncEngine

from otc.contracts import risk_limits_pb2_grpc as pb_grpc
from otc.ids import new_id
from risk_limits.domain.currency import round_up
from settlement.seed import seed_demo_balances
from stack.client import TraderClient
from stack.infra.platform import Platform
from tests.e2e_helpers import base_url, token_for
from tests.risk_limits.conftest import (
    amounts,
    assert_books_balance,
    both_ways,
    credit_line,
    exposure,
)

MAKER = "MM-1"


async def test_a_settled_rfq_no_longer_uses_credit_on_either_side(
    platform: Platform, engine: AsyncEngine
) -> None:
    trader = f"TRADER-{uuid.uuid4().hex[:8]}"
    await seed_demo_balances(engine, (trader,))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{platform.risk_port}") as channel:
        stub = pb_grpc.RiskLimitsStub(channel)
        await credit_line(stub, trader, "10000000")
        await both_ways(stub, trader, MAKER, "10000000")

        async with TraderClient(base_url(platform), token_for(platform, trader)) as client:
            rfq = await client.create_rfq(
                client_rfq_id=new_id(),
                instrument="BTC-USD",
                side="buy",
                quantity="0.5",
                counterparties=[MAKER],
            )
            rfq_id = rfq["rfq_id"]
            [quote] = await client.wait_quotes(rfq_id, count=1)
            status, body = await client.accept(rfq_id, quote["quote_id"])
            assert status == 200, body
            final = await client.wait_status(rfq_id, "SETTLED", "SETTLEMENT_FAILED", timeout=20)
            assert final == "SETTLED"
            trade_id = (await client.get_rfq(rfq_id))["trade_id"]

        reservation = await settled_reservation(engine, rfq_id)
        assert reservation.reason == f"trade {trade_id} settled"
        notional = round_up(Decimal("0.5") * Decimal(quote["offer_px"]), "USD")
        held = {(h["party"], h["counterparty"]): Decimal(h["amount"]) for h in reservation.holds}
        assert held == {
            (trader, ""): notional,
            (trader, MAKER): notional,
            (MAKER, ""): notional,
            (MAKER, trader): notional,
        }
        for party, counterparty in ((trader, ""), (trader, MAKER), (MAKER, trader)):
            assert amounts(await exposure(stub, party, counterparty)) == (0, 0, 10000000)
    async with engine.connect() as conn:
        await assert_books_balance(conn)


async def settled_reservation(engine: AsyncEngine, rfq_id: str) -> Row[Any]:
    """The reservation of `rfq_id` once risk_limits has heard that it settled."""
    deadline = time.monotonic() + 20
    while True:
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    text("SELECT status, reason, holds FROM risk.reservations WHERE rfq_id = :r"),
                    {"r": rfq_id},
                )
            ).one()
        if row.status == "SETTLED":
            return row
        assert time.monotonic() < deadline, f"the reservation is still {row.status}"
        await asyncio.sleep(0.1)
