"""WebSocket fan-out, measured: with many traders connected at once, how long a
quote takes from its publication on `rfq.quotes` to its arrival at the trader's
client. Publication time is the Kafka record's timestamp, arrival the client's
receive time; both read the same machine's clock. It measures; it asserts nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from otc.bus.envelope import InvalidMessage, decode
from otc.bus.topics import RFQ_QUOTES
from otc.contracts import events_pb2 as ev
from otc.ids import new_id
from stack.bench.report import Report
from stack.client import TraderClient


async def _published_at(bootstrap: str, seen: dict[str, float], stop: asyncio.Event) -> None:
    """quote_id -> publication time (epoch seconds), from the records' timestamps."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()
        parts = [
            TopicPartition(RFQ_QUOTES, p) for p in consumer.partitions_for_topic(RFQ_QUOTES) or ()
        ]
        consumer.assign(parts)
        await consumer.seek_to_end(*parts)
        for tp in parts:
            await consumer.position(tp)
        stop.set()  # positions resolved: the RFQs may start
        while True:
            for records in (await consumer.getmany(timeout_ms=100)).values():
                for record in records:
                    with contextlib.suppress(InvalidMessage):
                        payload = decode(record.value).payload
                        if isinstance(payload, ev.QuoteSubmitted):
                            seen[payload.quote_id] = record.timestamp / 1000
    finally:
        await consumer.stop()


async def run_fanout_bench(
    base_url: str,
    kafka_bootstrap: str,
    mint: Callable[[str], str],
    report: Report,
    *,
    traders: int = 200,
    rfqs_per_s: float = 5.0,
) -> None:
    published: dict[str, float] = {}
    arrived: dict[str, float] = {}

    def on_message(message: dict[str, Any], _: float) -> None:
        if message.get("type") == "quote":
            arrived.setdefault(message["data"]["quote_id"], time.time())

    clients = [TraderClient(base_url, mint(f"BENCH-T{i:03d}")) for i in range(traders)]
    connected = await asyncio.gather(
        *(client.__aenter__() for client in clients), return_exceptions=True
    )
    live = [c for c, ok in zip(clients, connected, strict=True) if isinstance(ok, TraderClient)]
    for client in live:
        client.on_message = on_message
    tap_ready = asyncio.Event()
    tap = asyncio.create_task(_published_at(kafka_bootstrap, published, tap_ready))
    try:
        await asyncio.wait_for(tap_ready.wait(), 30)
        creations = []
        for client in live:
            creations.append(
                asyncio.create_task(
                    client.create_rfq(
                        client_rfq_id=new_id(), instrument="BTC-USD", side="buy", quantity="0.5"
                    )
                )
            )
            await asyncio.sleep(1 / rfqs_per_s)
        await asyncio.gather(*creations, return_exceptions=True)
        await asyncio.sleep(3)  # the last quotes in flight
    finally:
        tap.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await tap
        for client in clients:
            with contextlib.suppress(Exception):
                await client.__aexit__(None, None, None)
    delays = [(arrived[q] - published[q]) * 1000 for q in arrived if q in published]
    report.measure(f"quote published -> at the trader, {len(live)} traders connected", delays)
    if len(live) < traders:
        report.fail("fan-out: traders that could not connect", traders - len(live))
