"""A maker of the test's own, and the messages it and the trader send, for
in-process tests of order_core on the real servers."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import grpc
from google.protobuf.message import Message as ProtoMessage

from order_core.service_layer.transaction import Dependencies
from otc.bus.envelope import Message, decode
from otc.clock import SystemClock
from otc.contracts import events_pb2 as ev
from otc.contracts import risk_limits_pb2 as pb
from otc.contracts import risk_limits_pb2_grpc as pb_grpc
from otc.ids import derived_id, new_id
from otc.quote_book import StoredQuote
from stack.infra.platform import Platform
from tests.order_core.scenario import TRADER, accept, deliver, message, order_state, rows


async def new_maker(platform: Platform, limit: str = "10000000") -> str:
    """A maker with credit lines of `limit` to trade with TRADER-A, and nothing
    quoting for it: no running quoter answers its last looks behind a test's back."""
    name = f"MM-OC-{uuid.uuid4().hex[:8]}"
    async with grpc.aio.insecure_channel(f"127.0.0.1:{platform.risk_port}") as channel:
        stub = pb_grpc.RiskLimitsStub(channel)
        for party, counterparty in ((name, ""), (name, TRADER), (TRADER, name)):
            await stub.SetCreditLine(
                pb.SetCreditLineRequest(
                    party=party, counterparty=counterparty, currency="USD", limit=limit
                )
            )
    return name


async def open_rfq(ctx: Dependencies, maker: str, *, requester: str = TRADER) -> str:
    rfq_id = new_id()
    now = SystemClock().now()
    rfq = ev.RfqRequested(
        rfq_id=rfq_id,
        client_rfq_id=rfq_id,
        requester=requester,
        instrument="BTC-USD",
        side=ev.SIDE_BUY,
        quantity="0.01",
        counterparties=[maker],
    )
    rfq.created_at.FromDatetime(now)
    rfq.expires_at.FromDatetime(now + timedelta(minutes=5))
    await deliver(ctx, message(rfq, rfq_id))
    return rfq_id


async def submit(
    ctx: Dependencies, rfq_id: str, maker: str, *, replaces: str = "", offer: str = "65000"
) -> str:
    """A quote as the quoting service makes one: in Redis first, then published."""
    quote_id = new_id()
    valid_ms = int(time.time() * 1000) + 60_000
    stored = StoredQuote(rfq_id, quote_id, maker, "BTC-USD", "", offer, "0.01", valid_ms)
    if replaces:
        assert (await ctx.quotes.replace(replaces, stored)).outcome.value == "done"
    else:
        assert (await ctx.quotes.put(stored)).outcome.value == "stored"
    submitted = ev.QuoteSubmitted(
        rfq_id=rfq_id,
        quote_id=quote_id,
        maker=maker,
        instrument="BTC-USD",
        offer_px=offer,
        quantity="0.01",
        replaces_quote_id=replaces,
    )
    submitted.valid_until.FromMilliseconds(valid_ms)
    await deliver(ctx, message(submitted, rfq_id))
    return quote_id


def withdrawn(rfq_id: str, quote_id: str, maker: str, reason: str) -> Message:
    event = ev.QuoteWithdrawn(rfq_id=rfq_id, quote_id=quote_id, maker=maker, reason=reason)
    event.withdrawn_at.GetCurrentTime()
    return message(event, rfq_id)


def answer(
    rfq_id: str, quote_id: str, maker: str, reservation_id: str, *, price: str, confirmed: bool
) -> Message:
    return message(
        ev.LastLookResponse(
            rfq_id=rfq_id,
            quote_id=quote_id,
            maker=maker,
            reservation_id=reservation_id,
            confirmed=confirmed,
            price=price if confirmed else "",
            reason="" if confirmed else "market moved",
        ),
        rfq_id,
    )


async def published(ctx: Dependencies, rfq_id: str) -> list[ProtoMessage]:
    found = await rows(
        ctx, "SELECT payload FROM order_core.outbox WHERE key = :k ORDER BY id", k=rfq_id
    )
    return [decode(bytes(row["payload"])).payload for row in found]


async def audited(ctx: Dependencies, rfq_id: str) -> list[str]:
    found = await rows(
        ctx,
        "SELECT event_type FROM order_core.audit_events WHERE rfq_id = :r ORDER BY rfq_seq",
        r=rfq_id,
    )
    return [str(row["event_type"]) for row in found]


async def pending(ctx: Dependencies, rfq_id: str, quote_id: str) -> str:
    """Accepts the quote; returns the reservation id of the accept."""
    command = accept(rfq_id, quote_id)
    await deliver(ctx, command)
    assert await order_state(ctx, rfq_id) == "PENDING_CONFIRMATION"
    return derived_id("reservation", command.event_id)


async def reservation_status(ctx: Dependencies, reservation_id: str) -> str:
    [row] = await rows(
        ctx, "SELECT status FROM risk.reservations WHERE reservation_id = :r", r=reservation_id
    )
    return str(row["status"])
