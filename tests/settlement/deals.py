"""Real deals on the running platform, for the settlement tests: a trader made for
the test (its own credit lines and, if asked, balances) trades with one demo maker
through the trader API, as a client would."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import grpc

from otc.contracts import risk_limits_pb2 as pb
from otc.contracts import risk_limits_pb2_grpc as pb_grpc
from otc.ids import new_id
from stack.client import TraderClient
from stack.infra.platform import Platform
from tests.e2e_helpers import base_url, token_for

MAKER = "MM-1"
LIMIT = "10000000"
ATTEMPTS = 3


@dataclass(frozen=True)
class Deal:
    rfq_id: str
    trade_id: str
    status: str  # SETTLED or SETTLEMENT_FAILED
    view: dict[str, Any]  # the RFQ as the trader's API shows it at the end


async def trader_with_credit(platform: Platform) -> str:
    """A trader no other test uses, with gross and bilateral lines with MAKER."""
    trader = f"TRADER-{uuid.uuid4().hex[:8]}"
    async with grpc.aio.insecure_channel(f"127.0.0.1:{platform.risk_port}") as channel:
        stub = pb_grpc.RiskLimitsStub(channel)
        for party, counterparty in ((trader, ""), (trader, MAKER), (MAKER, trader)):
            await stub.SetCreditLine(
                pb.SetCreditLineRequest(
                    party=party, counterparty=counterparty, currency="USD", limit=LIMIT
                )
            )
    return trader


async def deal(platform: Platform, trader: str, *, quantity: str = "0.5") -> Deal:
    """The trader buys BTC from MAKER and waits for settlement's verdict. A quote
    that expires before the accept lands, or a last look that times out, happens
    on a loaded machine; the trader then asks again, as a real one would."""
    async with TraderClient(base_url(platform), token_for(platform, trader)) as client:
        for _ in range(ATTEMPTS):
            rfq = await client.create_rfq(
                client_rfq_id=new_id(),
                instrument="BTC-USD",
                side="buy",
                quantity=quantity,
                counterparties=[MAKER],
            )
            rfq_id = rfq["rfq_id"]
            [quote] = await client.wait_quotes(rfq_id, count=1)
            mark = client.mark(rfq_id)
            status, body = await client.accept(rfq_id, quote["quote_id"])
            if status != 200:
                assert body["error"]["code"] == "quote_expired", body
                continue
            final = await client.wait_status(
                rfq_id, "SETTLED", "SETTLEMENT_FAILED", "QUOTED", "EXPIRED", since=mark, timeout=30
            )
            if final in ("SETTLED", "SETTLEMENT_FAILED"):
                view = await client.get_rfq(rfq_id)
                return Deal(rfq_id, view["trade_id"], final, view)
    raise AssertionError(f"no deal confirmed in {ATTEMPTS} attempts")


async def used_credit(platform: Platform, trader: str) -> dict[tuple[str, str], Decimal]:
    """Used plus frozen credit on the three lines the trader's deals touch."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{platform.risk_port}") as channel:
        stub = pb_grpc.RiskLimitsStub(channel)
        held = {}
        for party, counterparty in ((trader, ""), (trader, MAKER), (MAKER, trader)):
            line = await stub.GetExposure(
                pb.GetExposureRequest(party=party, counterparty=counterparty)
            )
            held[(party, counterparty)] = Decimal(line.used) + Decimal(line.frozen)
        return held


async def credit_freed(platform: Platform, trader: str, timeout: float = 20.0) -> None:
    """Waits until none of the trader's lines holds credit any more."""
    deadline = time.monotonic() + timeout
    while True:
        held = await used_credit(platform, trader)
        if not any(held.values()):
            return
        assert time.monotonic() < deadline, f"credit still held: {held}"
        await asyncio.sleep(0.1)
