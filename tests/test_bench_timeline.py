"""The bench's latency budget against the real Kafka: a hand-made RFQ published
across the platform's topics with known pauses between its steps shows each pause
in its hop, and hops whose events are missing are left out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from google.protobuf.message import Message as ProtoMessage

from otc.bus import topics
from otc.bus.producer import Publisher
from otc.contracts import events_pb2 as ev
from otc.ids import new_id
from stack.bench.timeline import (
    HOPS,
    LAST_LOOK_HOLD,
    SERIES,
    Marks,
    Timeline,
    budget,
    kafka_floor,
    rfq_id_of,
)
from stack.infra.provider import Endpoints

# The pause before each hop's end, in seconds: a hop timed between the wrong events
# falls short of its pause or far past it.
PAUSES = dict(zip(HOPS, (0.03, 0.2, 0.06, 0.09, 0.04, 0.12, 0.25, 0.07, 0.05, 0.15), strict=True))
# ms: timestamps are whole milliseconds; publishing and a busy machine add some
EARLY_MS, LATE_MS = 2, 300


@pytest.fixture
async def publisher(endpoints: Endpoints) -> AsyncIterator[Publisher]:
    pub = Publisher(endpoints.kafka_bootstrap, "bench-timeline-test")
    await pub.start()
    yield pub
    await pub.stop()


class Script:
    def __init__(self, publisher: Publisher, rfq_id: str) -> None:
        self.publisher = publisher
        self.rfq_id = rfq_id

    async def publish(
        self, topic: str, payload: ProtoMessage, *, event_id: str | None = None
    ) -> str:
        return await self.publisher.publish(
            topic, self.rfq_id, payload, correlation_id=self.rfq_id, event_id=event_id
        )


def _quote(rfq_id: str, quote_id: str, maker: str) -> ev.QuoteSubmitted:
    return ev.QuoteSubmitted(rfq_id=rfq_id, quote_id=quote_id, maker=maker, offer_px="100")


async def _whole_deal(publisher: Publisher, rfq_id: str) -> Marks:
    """Every step of a confirmed and settled RFQ, each after its hop's pause."""
    run, marks, pause = Script(publisher, rfq_id), Marks(), list(PAUSES.values())
    rfq = ev.RfqRequested(rfq_id=rfq_id, requester="T", counterparties=["M1", "M2"])
    marks.rfq_posted = time.time()
    # order_core's copy leaves first: the hop must end at the makers' copy
    await run.publish(topics.ORDER_COMMANDS, rfq)
    await asyncio.sleep(pause[0])
    await run.publish(topics.RFQ_REQUESTS, rfq)
    await asyncio.sleep(pause[1])
    first = _quote(rfq_id, "q-1", "M1")
    await run.publish(topics.RFQ_QUOTES, first)
    await run.publish(topics.RFQ_QUOTES, _quote(rfq_id, "q-2", "M2"))
    await asyncio.sleep(pause[2])
    await run.publish(topics.ORDER_EVENTS, ev.QuoteRecorded(requester="T", quote=first))
    await asyncio.sleep(pause[3])
    marks.first_quote = time.time()
    marks.accept_posted = time.time()
    await asyncio.sleep(pause[4])
    accept = ev.AcceptQuote(rfq_id=rfq_id, quote_id="q-1", trader="T")
    accept_id = await run.publish(topics.ORDER_COMMANDS, accept)
    await asyncio.sleep(pause[5])
    await run.publish(topics.ORDER_EVENTS, ev.CommandResult(command_id=accept_id, rfq_id=rfq_id))
    pending = ev.OrderStateChanged(rfq_id=rfq_id, state="PENDING_CONFIRMATION", event="AcceptQuote")
    await run.publish(topics.ORDER_EVENTS, pending)
    look = ev.LastLookRequested(rfq_id=rfq_id, quote_id="q-1", maker="M1", reservation_id="r-1")
    await run.publish(topics.LASTLOOK_REQUESTS, look)
    await asyncio.sleep(pause[6])
    answer = ev.LastLookResponse(rfq_id=rfq_id, reservation_id="r-1", confirmed=True)
    await run.publish(topics.LASTLOOK_RESPONSES, answer)
    await asyncio.sleep(pause[7])
    confirmed = ev.OrderStateChanged(
        rfq_id=rfq_id, state="CONFIRMED", event="CounterpartyConfirm", trade_id="t-1"
    )
    await run.publish(topics.ORDER_EVENTS, confirmed)
    await run.publish(topics.TRADE_CONFIRMED, ev.TradeConfirmed(trade_id="t-1", rfq_id=rfq_id))
    await asyncio.sleep(pause[8])
    marks.confirmed = time.time()
    await asyncio.sleep(pause[9])
    await run.publish(topics.SETTLEMENT_EVENTS, ev.TradeSettled(trade_id="t-1", rfq_id=rfq_id))
    # a redelivered accept is the same accept, not a later one
    await run.publish(topics.ORDER_COMMANDS, accept, event_id=accept_id)
    return marks


async def _rejected_deal(publisher: Publisher, rfq_id: str) -> Marks:
    """An RFQ whose first quote is never recorded and whose last look is rejected."""
    run, marks = Script(publisher, rfq_id), Marks()
    marks.rfq_posted = time.time()
    await run.publish(topics.RFQ_REQUESTS, ev.RfqRequested(rfq_id=rfq_id, requester="T"))
    await run.publish(topics.RFQ_QUOTES, _quote(rfq_id, "q-a", "M1"))
    second = _quote(rfq_id, "q-b", "M2")
    await run.publish(topics.RFQ_QUOTES, second)
    await run.publish(topics.ORDER_EVENTS, ev.QuoteRecorded(requester="T", quote=second))
    marks.first_quote = marks.accept_posted = time.time()
    await run.publish(topics.ORDER_COMMANDS, ev.AcceptQuote(rfq_id=rfq_id, quote_id="q-b"))
    look = ev.LastLookRequested(rfq_id=rfq_id, quote_id="q-b", maker="M2", reservation_id="r-b")
    await run.publish(topics.LASTLOOK_REQUESTS, look)
    answer = ev.LastLookResponse(rfq_id=rfq_id, reservation_id="r-b", confirmed=False)
    await run.publish(topics.LASTLOOK_RESPONSES, answer)
    back = ev.OrderStateChanged(rfq_id=rfq_id, state="QUOTED", event="CounterpartyReject")
    await run.publish(topics.ORDER_EVENTS, back)
    return marks


async def test_each_pause_shows_in_its_hop(endpoints: Endpoints, publisher: Publisher) -> None:
    rfq_id = new_id()
    async with Timeline(endpoints.kafka_bootstrap, fetch_wait_ms=5) as timeline:
        marks = await _whole_deal(publisher, rfq_id)
        assert await timeline.caught_up(timeout_s=10)
        figures = budget(timeline, {rfq_id: marks})
        published = timeline.first_quote_published(rfq_id)

    expected = {name: pause * 1000 for name, pause in PAUSES.items()}
    expected[HOPS[9]] += expected[HOPS[8]]  # settlement starts with CONFIRMED
    expected[LAST_LOOK_HOLD] = expected[HOPS[6]] + expected[HOPS[7]]
    assert list(figures) == list(SERIES)
    for name, ms in expected.items():
        assert len(figures[name]) == 1, name
        assert ms - EARLY_MS <= figures[name][0] <= ms + LATE_MS, (name, figures[name], ms)
    assert published is not None
    assert marks.rfq_posted is not None
    assert 0 < published - marks.rfq_posted < 1.0


async def test_a_hop_with_a_missing_end_is_left_out(
    endpoints: Endpoints, publisher: Publisher
) -> None:
    rejected, silent = new_id(), new_id()
    async with Timeline(endpoints.kafka_bootstrap, fetch_wait_ms=5) as timeline:
        marks = {rejected: await _rejected_deal(publisher, rejected), silent: Marks(time.time())}
        assert await timeline.caught_up(timeout_s=10)
        figures = budget(timeline, marks)

    # the first quote was never recorded; the rejected answer confirmed nothing
    missing = {HOPS[2], HOPS[7], HOPS[8], HOPS[9]}
    for name in SERIES:
        assert len(figures[name]) == (0 if name in missing else 1), name
        assert all(0 <= ms < 1000 for ms in figures[name]), (name, figures[name])


def test_every_payload_is_found_by_its_rfq() -> None:
    quote = _quote("rfq-1", "q", "M")
    assert rfq_id_of(ev.QuoteRecorded(quote=quote)) == "rfq-1"
    withdrawn = ev.QuoteWithdrawn(rfq_id="rfq-2")
    assert rfq_id_of(ev.QuoteWithdrawalRecorded(withdrawal=withdrawn)) == "rfq-2"
    assert rfq_id_of(ev.TradeSettled(rfq_id="rfq-3")) == "rfq-3"
    assert rfq_id_of(ev.PriceTick(instrument="BTC-USD")) == ""


async def test_kafka_floor_times_each_round_trip(endpoints: Endpoints) -> None:
    figures = await kafka_floor(endpoints.kafka_bootstrap, 5, 4)
    assert len(figures) == 4
    assert all(0 < ms < 5000 for ms in figures), figures
