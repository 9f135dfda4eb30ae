"""The latency budget of one RFQ for `otc bench`: where its time goes, hop by hop,
from the timestamps its Kafka records already carry and the bench's own marks.

A `Timeline` reads the platform's topics from their end while the bench runs and
keeps each RFQ's events with their records' CreateTime, stamped by the producer as
it batches the record: the produce round trip shows in the next hop ("Kafka + ..."),
and a service's hop includes its outbox relay. `budget` lines them up with the
bench's wall-clock marks (`time.time()`), in milliseconds.

Clocks: records are stamped by each producing process's wall clock, marks by the
bench's, to the millisecond. They compare only because every process runs on one
machine and reads one clock: the figures mean something only for a platform
co-located with the bench (across machines, clock offsets add to every hop).

`spans` says which events end each hop; an RFQ lacking either end of a hop is left
out of it, never guessed. CONFIRMED is order_core's `OrderStateChanged` on
order.events, which the edge pushes to the trader (its `TradeConfirmed` leaves in
the same transaction and starts settlement's hop). The accept is an RFQ's latest:
a re-accept after a rejected last look starts the only chain that can confirm.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from google.protobuf.message import Message as ProtoMessage

from order_core.domain.lifecycle import OrderEvent, OrderState
from otc.bus import topics
from otc.bus.envelope import InvalidMessage, decode
from otc.bus.producer import Publisher
from otc.bus.requests import ReplyReader, Waiters
from otc.contracts import events_pb2 as ev
from otc.ids import new_id

# every topic an RFQ's events travel on: all but prices and audit checkpoints
TOPICS = tuple(
    t for t in topics.MAIN_TOPICS if t not in (topics.MARKET_PRICES, topics.AUDIT_CHECKPOINTS)
)

# Numbered so that they keep their order where names are sorted (the JSON report).
HOPS: tuple[str, ...] = (
    "hop 01 edge: POST /v1/rfqs -> RFQ published",
    "hop 02 Kafka + quoter: RFQ -> first quote published",
    "hop 03 Kafka + order_core: quote -> quote recorded",
    "hop 04 Kafka + edge: quote recorded -> trader has it",
    "hop 05 edge: POST accept -> accept published",
    "hop 06 Kafka + order_core + credit freeze: accept -> last look requested",
    "hop 07 Kafka + maker's hold: last look -> answer published",
    "hop 08 Kafka + order_core + credit commit: answer -> CONFIRMED published",
    "hop 09 Kafka + edge: CONFIRMED -> trader has it",
    "hop 10 settlement: trade confirmed -> settled published",
)
LAST_LOOK_HOLD = "last-look hold: requested -> answer applied"
SERIES: tuple[str, ...] = (*HOPS, LAST_LOOK_HOLD)

# the state machine's names, as order_core's OrderStateChanged carries them
ANSWER_APPLIED = frozenset({OrderEvent.COUNTERPARTY_CONFIRM, OrderEvent.COUNTERPARTY_REJECT})
CONFIRMED = OrderState.CONFIRMED
POLL_MS = 100
FLOOR_TOPIC = "bench.kafka-floor"
FLOOR_WAIT_S = 10.0
P = TypeVar("P", bound=ProtoMessage)


@dataclass
class Marks:
    """When the bench did or saw each step of one RFQ, `time.time()` seconds."""

    rfq_posted: float | None = None
    first_quote: float | None = None  # the trader's WebSocket had its first quote
    accept_posted: float | None = None
    confirmed: float | None = None  # the trader's WebSocket had CONFIRMED


@dataclass(frozen=True, slots=True)
class Event:
    type: str  # the envelope's
    topic: str
    at_ms: int  # the record's timestamp
    payload: ProtoMessage


def rfq_id_of(payload: ProtoMessage) -> str:
    """The RFQ a payload is about; empty for those about none (an end-of-day batch)."""
    if isinstance(payload, ev.QuoteRecorded):
        return payload.quote.rfq_id
    if isinstance(payload, ev.QuoteWithdrawalRecorded):
        return payload.withdrawal.rfq_id
    field = payload.DESCRIPTOR.fields_by_name.get("rfq_id")
    return "" if field is None else str(getattr(payload, field.name))


class Timeline:
    """Every event on the platform's topics, by RFQ, from entering the block on.
    Reads from the topics' end with manual assignment: no group, nothing committed."""

    def __init__(self, bootstrap: str, *, fetch_wait_ms: int = 20) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=fetch_wait_ms
        )
        self._parts: list[TopicPartition] = []
        self._events: dict[str, list[Event]] = {}
        self._seen: set[tuple[str, str]] = set()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Timeline:
        await self._consumer.start()
        try:
            await self._consumer.topics()
            for topic in TOPICS:
                partitions = self._consumer.partitions_for_topic(topic)
                if not partitions:
                    raise RuntimeError(f"topic {topic} does not exist: is the platform up?")
                self._parts += [TopicPartition(topic, p) for p in sorted(partitions)]
            self._consumer.assign(self._parts)
            await self._consumer.seek_to_end(*self._parts)
            for tp in self._parts:  # fixed now, so nothing published later is missed
                await self._consumer.position(tp)
        except BaseException:
            await self._consumer.stop()
            raise
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            if self._task is not None:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        finally:
            await self._consumer.stop()

    async def _read(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=POLL_MS)
            for records in batches.values():
                for record in records:
                    self._add(record.topic, record.timestamp, record.value)

    def _add(self, topic: str, at_ms: int, raw: bytes | None) -> None:
        try:
            message = decode(raw)
        except InvalidMessage:
            return
        rfq_id, key = rfq_id_of(message.payload), (topic, message.event_id)
        if rfq_id and key not in self._seen:  # a redelivery counts once, as first published
            self._seen.add(key)
            event = Event(message.type, topic, at_ms, message.payload)
            self._events.setdefault(rfq_id, []).append(event)

    def events(self, rfq_id: str) -> list[Event]:
        return list(self._events.get(rfq_id, ()))

    def first_quote_published(self, rfq_id: str) -> float | None:
        """When the RFQ's first maker quote was published, `time.time()` seconds."""
        at, _ = _pick(self._events.get(rfq_id, ()), ev.QuoteSubmitted)
        return None if at is None else at / 1000

    async def caught_up(self, timeout_s: float = 5.0) -> bool:
        """Whether, within `timeout_s`, it read everything published before the call."""
        if self._task is not None and self._task.done():
            self._task.result()  # the reader's failure, rather than figures missing
        ends = await self._consumer.end_offsets(self._parts)
        deadline = time.monotonic() + timeout_s
        while any([await self._consumer.position(tp) < end for tp, end in ends.items()]):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(POLL_MS / 5000)
        return True


def _pick(
    events: Sequence[Event],
    kind: type[P],
    topic: str | None = None,
    *,
    since: float | None = float("-inf"),
    where: Callable[[P], bool] = lambda _: True,
    latest: bool = False,
) -> tuple[float, P] | tuple[None, None]:
    """(timestamp, payload) of the earliest (or latest) `kind` from `since` on (None:
    it follows a missing event) that `where` accepts; `topic` tells the RFQs apart."""
    found = [
        (float(e.at_ms), e.payload)
        for e in events
        if isinstance(e.payload, kind)
        and topic in (None, e.topic)
        and since is not None
        and e.at_ms >= since
        and where(e.payload)
    ]
    return (max if latest else min)(found, key=lambda f: f[0]) if found else (None, None)


def _ms(seconds: float | None) -> float | None:
    # truncated as producers stamp records: a mark is never after a later record
    return None if seconds is None else float(int(seconds * 1000))


def spans(events: Sequence[Event], marks: Marks) -> dict[str, float]:
    """Each series of one RFQ that has both its ends, in milliseconds."""
    rfq, _ = _pick(events, ev.RfqRequested, topics.RFQ_REQUESTS)
    quote, submitted = _pick(events, ev.QuoteSubmitted)
    qid = submitted.quote_id if submitted else ""
    recorded, _ = _pick(
        events, ev.QuoteRecorded, since=quote, where=lambda p: p.quote.quote_id == qid
    )
    first_recorded, _ = _pick(events, ev.QuoteRecorded)
    accept, _ = _pick(events, ev.AcceptQuote, latest=True)
    look, requested = _pick(events, ev.LastLookRequested, since=accept)
    rid = requested.reservation_id if requested else ""
    answer, _ = _pick(
        events, ev.LastLookResponse, since=look, where=lambda p: p.reservation_id == rid
    )
    applied, change = _pick(
        events, ev.OrderStateChanged, since=answer, where=lambda p: p.event in ANSWER_APPLIED
    )
    confirmed, _ = _pick(events, ev.OrderStateChanged, where=lambda p: p.state == CONFIRMED)
    trade, confirmation = _pick(events, ev.TradeConfirmed)
    tid = confirmation.trade_id if confirmation else ""
    settled, _ = _pick(events, ev.TradeSettled, where=lambda p: p.trade_id == tid)
    ends = (
        (_ms(marks.rfq_posted), rfq),
        (rfq, quote),
        (quote, recorded),
        (first_recorded, _ms(marks.first_quote)),
        (_ms(marks.accept_posted), accept),
        (accept, look),
        (look, answer),
        (answer, applied if change and change.state == CONFIRMED else None),
        (confirmed, _ms(marks.confirmed)),
        (trade, settled),
        (look, applied),
    )
    return {
        name: end - start
        for name, (start, end) in zip(SERIES, ends, strict=True)
        if start is not None and end is not None
    }


def budget(timeline: Timeline, marks: Mapping[str, Marks]) -> dict[str, list[float]]:
    """Each series of `SERIES`, in milliseconds, over the RFQs in `marks` (by RFQ
    id) that have both its ends; call it once the timeline has `caught_up`."""
    series: dict[str, list[float]] = {name: [] for name in SERIES}
    for rfq_id, marked in marks.items():
        for name, ms in spans(timeline.events(rfq_id), marked).items():
            series[name].append(ms)
    return series


async def kafka_floor(bootstrap: str, fetch_wait_ms: int, count: int) -> list[float]:
    """The raw cost of one Kafka hop, `count` times in a row: milliseconds from publishing
    a record to a reader with that fetch wait having it. On the bench's own topic, which
    no service reads, created if missing (a broker that refuses to fails the call)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if FLOOR_TOPIC not in await admin.list_topics():
            with contextlib.suppress(TopicAlreadyExistsError):  # another bench got there first
                await admin.create_topics([NewTopic(FLOOR_TOPIC, 1, 1)])
    finally:
        await admin.close()
    publisher = Publisher(bootstrap, "bench-kafka-floor")
    await publisher.start()
    try:
        seen = Waiters(_probe_seen)
        async with ReplyReader(bootstrap, FLOOR_TOPIC, seen, fetch_max_wait_ms=fetch_wait_ms):
            await _probe(publisher, seen)  # warm-up: metadata and connections
            timings = [await _probe(publisher, seen) for _ in range(count)]
            return [t for t in timings if t is not None]
    finally:
        await publisher.stop()


def _probe_seen(payload: ProtoMessage) -> tuple[str, float] | None:
    """A probe answers itself with when it was read."""
    if isinstance(payload, ev.CommandResult):
        return payload.command_id, time.perf_counter()
    return None


async def _probe(publisher: Publisher, seen: Waiters[float]) -> float | None:
    probe = ev.CommandResult(command_id=new_id())
    with seen.expecting(probe.command_id) as answered:
        sent = time.perf_counter()
        await publisher.publish(FLOOR_TOPIC, probe.command_id, probe, correlation_id="bench")
    at = await seen.wait(probe.command_id, answered, FLOOR_WAIT_S)
    return None if at is None else (at - sent) * 1000
