"""Messages as order_core receives them, and what it answered, for in-process tests."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from google.protobuf.message import Message as ProtoMessage
from sqlalchemy import text

from order_core.entrypoints import inbound
from order_core.service_layer.transaction import Dependencies
from otc.bus.envelope import Message, decode, encode
from otc.clock import SystemClock
from otc.contracts import events_pb2 as ev
from otc.ids import derived_id, new_id
from otc.quote_book import StoredQuote

TRADER = "TRADER-A"
MAKERS = ("MM-1", "MM-2", "MM-3")


def message(payload: ProtoMessage, correlation_id: str, event_id: str | None = None) -> Message:
    _, raw = encode(
        payload,
        producer="test",
        occurred_at=SystemClock().now(),
        correlation_id=correlation_id,
        event_id=event_id,
    )
    return decode(raw)


async def deliver(ctx: Dependencies, msg: Message) -> None:
    await inbound.deliver(ctx, msg)


async def open_rfq(ctx: Dependencies, *, window: timedelta = timedelta(minutes=5)) -> str:
    rfq_id = new_id()
    now = SystemClock().now()
    rfq = ev.RfqRequested(
        rfq_id=rfq_id,
        client_rfq_id=rfq_id,
        requester=TRADER,
        instrument="BTC-USD",
        side=ev.SIDE_BUY,
        quantity="0.01",
        counterparties=list(MAKERS),
    )
    rfq.created_at.FromDatetime(now)
    rfq.expires_at.FromDatetime(now + window)
    await deliver(ctx, message(rfq, rfq_id))
    return rfq_id


async def quote(ctx: Dependencies, rfq_id: str, maker: str, offer: str = "65000") -> str:
    """A maker's quote, live in Redis and recorded by order_core, as in production."""
    quote_id = new_id()
    valid_ms = int(time.time() * 1000) + 60_000
    await ctx.quotes.put(
        StoredQuote(rfq_id, quote_id, maker, "BTC-USD", "", offer, "0.01", valid_ms)
    )
    submitted = ev.QuoteSubmitted(
        rfq_id=rfq_id,
        quote_id=quote_id,
        maker=maker,
        instrument="BTC-USD",
        offer_px=offer,
        quantity="0.01",
    )
    submitted.valid_until.FromMilliseconds(valid_ms)
    await deliver(ctx, message(submitted, rfq_id))
    return quote_id


def accept(rfq_id: str, quote_id: str) -> Message:
    return message(ev.AcceptQuote(rfq_id=rfq_id, quote_id=quote_id, trader=TRADER), rfq_id)


def cancel(rfq_id: str) -> Message:
    return message(ev.CancelRfq(rfq_id=rfq_id, trader=TRADER), rfq_id)


async def rows(ctx: Dependencies, sql: str, **params: Any) -> list[Any]:
    async with ctx.engine.connect() as conn:
        return list((await conn.execute(text(sql), params)).mappings())


async def results(ctx: Dependencies, rfq_id: str) -> dict[str, ev.CommandResult]:
    """order_core's answers to commands on this RFQ, by command id, from its outbox."""
    answers: dict[str, ev.CommandResult] = {}
    for row in await rows(
        ctx, "SELECT payload FROM order_core.outbox WHERE key = :k ORDER BY id", k=rfq_id
    ):
        msg = decode(bytes(row["payload"]))
        if isinstance(msg.payload, ev.CommandResult):
            answers[msg.payload.command_id] = msg.payload
    return answers


async def order_state(ctx: Dependencies, rfq_id: str) -> str:
    [row] = await rows(ctx, "SELECT state FROM order_core.orders WHERE rfq_id = :r", r=rfq_id)
    return str(row["state"])


async def live_reservations(ctx: Dependencies, rfq_id: str) -> list[Any]:
    return await rows(
        ctx,
        "SELECT reservation_id, status FROM risk.reservations "
        # a winner's reservation may already be settled: the running platform's
        # makers answer the last look and the trade goes all the way
        "WHERE rfq_id = :r AND status IN ('FROZEN', 'COMMITTED', 'SETTLED')",
        r=rfq_id,
    )


async def credit_held_by_losers(
    ctx: Dependencies, rfq_id: str, winner: ev.CommandResult
) -> list[str]:
    """Reservations of `rfq_id` still holding credit that are not the winning accept's.

    The winner's own reservation is judged apart: the running platform's makers answer
    its last look, and a reject, or silence on a loaded machine, rightly releases it."""
    mine = derived_id("reservation", winner.command_id)
    held = {
        r["reservation_id"]: r["status"]
        for r in await rows(
            ctx, "SELECT reservation_id, status FROM risk.reservations WHERE rfq_id = :r", r=rfq_id
        )
    }
    assert mine in held, "the winning accept froze credit"
    return [rid for rid, status in held.items() if rid != mine and status != "RELEASED"]
