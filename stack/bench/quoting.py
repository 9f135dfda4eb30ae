"""The quoting runtime's figures for `otc bench`: how many quotes per second one
quoting process sustains, and how long an RFQ takes from being published to its
quote being stored, beside what its floor costs in the same run: a bare Kafka
produce-and-consume round trip at the same fetch wait (the bench's floors time the
Redis round trip).

One quoting process of a maker made for the run (fixed spread) is started as its
own OS process, as `otc up` starts them. Its RFQs are announced to order_core as
the edge does (so their quotes are recorded, not held up as early) and expire on
their own. A quote is published right after it is stored, so seeing it on
`rfq.quotes` is when it was stored, plus one publish. It measures; it asserts nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta

import httpx
from google.protobuf.message import Message as ProtoMessage

from otc.bus.envelope import encode
from otc.bus.producer import Publisher
from otc.bus.requests import Answer, ReplyReader, Waiters
from otc.bus.topics import ORDER_COMMANDS, RFQ_QUOTES, RFQ_REQUESTS
from otc.contracts import events_pb2
from stack.bench.report import Report
from stack.infra.processes import Child, free_port

STRATEGY = "quoting_service.strategies.fixed_spread:FixedSpread"
READY_TIMEOUT_S = 90.0
WAIT_S = 30.0
# What a record waits to be fetched stays out of the figures, as far as it can.
FETCH_WAIT_MS = 5


def _quoted_by(maker: str) -> Answer[float]:
    """A quote of `maker` answers its RFQ with when it was seen."""

    def answer(payload: ProtoMessage) -> tuple[str, float] | None:
        if isinstance(payload, events_pb2.QuoteSubmitted) and payload.maker == maker:
            return payload.rfq_id, time.perf_counter()
        return None

    return answer


def _read_back(payload: ProtoMessage) -> tuple[str, float] | None:
    if isinstance(payload, events_pb2.RfqRequested):
        return payload.rfq_id, time.perf_counter()
    return None


async def _round_trip(seen: Waiters[float], rfq_id: str, send: Awaitable[float]) -> float | None:
    """Milliseconds from when `send` says it sent to when `rfq_id` was seen."""
    with seen.expecting(rfq_id) as answered:
        sent = await send
    at = await seen.wait(rfq_id, answered, WAIT_S)
    return None if at is None else (at - sent) * 1000


def _rfq(maker: str) -> events_pb2.RfqRequested:
    now = datetime.now(UTC)
    rfq_id = str(uuid.uuid4())
    rfq = events_pb2.RfqRequested(
        rfq_id=rfq_id,
        client_rfq_id=rfq_id,
        requester="BENCH-TRADER",
        instrument="BTC-USD",
        side=events_pb2.SIDE_BUY,
        quantity="0.1",
        counterparties=[maker] if maker else [],
    )
    rfq.created_at.FromDatetime(now)
    rfq.expires_at.FromDatetime(now + timedelta(seconds=30))
    return rfq


async def _send(publisher: Publisher, rfq: events_pb2.RfqRequested) -> float:
    """Announces the RFQ to order_core, then sends it to the makers; returns when."""
    await publisher.publish(ORDER_COMMANDS, rfq.rfq_id, rfq, correlation_id=rfq.rfq_id)
    sent = time.perf_counter()
    await publisher.publish(RFQ_REQUESTS, rfq.rfq_id, rfq, correlation_id=rfq.rfq_id)
    return sent


async def _start_quoter(maker: str, bootstrap: str, redis_url: str) -> Child:
    port = free_port()
    env = dict(os.environ)
    env.update(
        {
            "OTC_KAFKA_BOOTSTRAP": bootstrap,
            "OTC_REDIS_URL": redis_url,
            "OTC_OPS_PORT": str(port),
            "OTC_LOG_LEVEL": "WARNING",
        }
    )
    argv = [sys.executable, "-m", "stack.cli", "quoter", "--maker", maker, "--strategy", STRATEGY]
    child = Child(f"bench-quoter-{maker}", argv, env=env)
    child.start()
    deadline = time.monotonic() + READY_TIMEOUT_S
    async with httpx.AsyncClient(timeout=1.0) as client:
        while time.monotonic() < deadline and child.alive():
            with contextlib.suppress(httpx.TransportError):
                if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                    return child
            await asyncio.sleep(0.2)
    await asyncio.to_thread(child.stop)
    raise RuntimeError("the bench's quoting process did not get ready")


async def run_quoting_bench(
    bootstrap: str, redis_url: str, report: Report, *, rfqs: int = 500, samples: int = 200
) -> None:
    """Runs the quoting figures against the platform's Kafka and Redis."""
    maker = f"BENCH-MM-{uuid.uuid4().hex[:8]}"
    publisher = Publisher(bootstrap, "quoting-bench")
    await publisher.start()
    quoter = await _start_quoter(maker, bootstrap, redis_url)
    try:
        quotes = Waiters(_quoted_by(maker))
        async with ReplyReader(bootstrap, RFQ_QUOTES, quotes, fetch_max_wait_ms=FETCH_WAIT_MS):
            for _ in range(5):  # warm-up: connections, code paths
                warm = _rfq(maker)
                await _round_trip(quotes, warm.rfq_id, _send(publisher, warm))
            latency = await _latency(publisher, quotes, maker, samples)
            per_s, burst_done = await _throughput(publisher, quotes, maker, rfqs)
        kafka = await _kafka_round_trips(publisher, bootstrap, samples)
    finally:
        await asyncio.to_thread(quoter.stop)
        await publisher.stop()
    report.measure("quoting process: RFQ published -> quote stored", latency)
    report.rate(f"quotes stored by one quoting process ({rfqs} RFQs at once)", per_s)
    if burst_done < rfqs:
        report.fail("quoting process: RFQs never quoted", rfqs - burst_done)
    report.floor(f"Kafka produce -> consume ({FETCH_WAIT_MS} ms fetch wait)", kafka)


async def _latency(
    publisher: Publisher, quotes: Waiters[float], maker: str, count: int
) -> list[float]:
    latencies = []
    for _ in range(count):
        rfq = _rfq(maker)
        latency = await _round_trip(quotes, rfq.rfq_id, _send(publisher, rfq))
        if latency is not None:
            latencies.append(latency)
    return latencies


async def _throughput(
    publisher: Publisher, quotes: Waiters[float], maker: str, count: int
) -> tuple[float, int]:
    burst = [_rfq(maker) for _ in range(count)]
    quoted = {r.rfq_id: quotes.expect(r.rfq_id) for r in burst}
    await publisher.send_many([(ORDER_COMMANDS, r.rfq_id, _raw(publisher, r)) for r in burst])
    started = time.perf_counter()
    await publisher.send_many([(RFQ_REQUESTS, r.rfq_id, _raw(publisher, r)) for r in burst])
    seen = await asyncio.gather(*(quotes.wait(i, f, WAIT_S) for i, f in quoted.items()))
    done = [at for at in seen if at is not None]
    if not done:
        return 0.0, 0
    return len(done) / (max(done) - started), len(done)


def _raw(publisher: Publisher, rfq: events_pb2.RfqRequested) -> bytes:
    _, raw = encode(
        rfq,
        producer=publisher.producer_name,
        occurred_at=datetime.now(UTC),
        correlation_id=rfq.rfq_id,
    )
    return raw


async def _kafka_round_trips(publisher: Publisher, bootstrap: str, count: int) -> list[float]:
    """Publish one record and read it back: an RFQ addressed to no maker, which
    nothing acts on."""
    timings = []
    back = Waiters(_read_back)
    async with ReplyReader(bootstrap, RFQ_REQUESTS, back, fetch_max_wait_ms=FETCH_WAIT_MS):
        for _ in range(count):
            rfq = _rfq("")
            timing = await _round_trip(back, rfq.rfq_id, _request(publisher, rfq))
            if timing is not None:
                timings.append(timing)
    return timings


async def _request(publisher: Publisher, rfq: events_pb2.RfqRequested) -> float:
    started = time.perf_counter()
    await publisher.publish(RFQ_REQUESTS, rfq.rfq_id, rfq, correlation_id=rfq.rfq_id)
    return started
