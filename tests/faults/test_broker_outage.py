"""Kafka cut off: a publish fails within its timeout instead of hanging, and a
consumer rides out the outage and then receives everything, once each."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from otc.bus import producer as producer_module
from otc.bus.consumer import Consumer
from otc.bus.envelope import Message
from otc.bus.producer import Publisher
from otc.bus.topics import MARKET_PRICES
from otc.contracts import events_pb2
from stack.infra.kafka import EmbeddedKafka, ensure_topics
from stack.infra.processes import free_port
from tests.faults.proxy import TcpProxy


@pytest.fixture(scope="module")
async def broker_behind_proxy(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[str, TcpProxy]]:
    """A broker of its own whose advertised address is the proxy, so every client
    connection (bootstrap and data) goes through it."""
    port = free_port()
    proxy = TcpProxy("127.0.0.1", port)
    await proxy.start()
    kafka = EmbeddedKafka(
        Path(tmp_path_factory.mktemp("kafka")) / "kafka.log", port=port, advertised_port=proxy.port
    )
    kafka.start()
    try:
        await ensure_topics(kafka.bootstrap, partitions=2)
        yield kafka.bootstrap, proxy
    finally:
        await proxy.stop()
        kafka.stop()


def _tick(mid: int) -> events_pb2.PriceTick:
    return events_pb2.PriceTick(instrument="TEST", mid=str(mid))


async def test_a_publish_to_an_unreachable_broker_fails_within_its_timeout(
    broker_behind_proxy: tuple[str, TcpProxy], monkeypatch: pytest.MonkeyPatch
) -> None:
    bootstrap, proxy = broker_behind_proxy
    monkeypatch.setattr(producer_module, "SEND_TIMEOUT_S", 2.0)
    publisher = Publisher(bootstrap, "fault-test")
    await publisher.start()
    try:
        await publisher.publish(MARKET_PRICES, "k", _tick(1), correlation_id="c")
        proxy.blackhole()
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await publisher.publish(MARKET_PRICES, "k", _tick(2), correlation_id="c")
        assert time.monotonic() - started < 5
        proxy.restore()
        # the stuck connection is dropped after the client's request timeout; a
        # caller retrying a transient failure then gets through
        for _ in range(15):
            try:
                await publisher.publish(MARKET_PRICES, "k", _tick(3), correlation_id="c")
                break
            except TimeoutError:
                continue
        else:
            pytest.fail("publishing did not recover after the broker came back")
    finally:
        proxy.restore()
        await publisher.stop()


async def test_a_consumer_rides_out_a_broker_outage(
    broker_behind_proxy: tuple[str, TcpProxy],
) -> None:
    bootstrap, proxy = broker_behind_proxy
    received: list[str] = []

    async def handle(_: str, message: Message) -> None:
        assert isinstance(message.payload, events_pb2.PriceTick)
        received.append(message.payload.mid)

    publisher = Publisher(bootstrap, "fault-test")
    await publisher.start()
    consumer = Consumer(
        service="fault-test",
        bootstrap=bootstrap,
        topics=(MARKET_PRICES,),
        handler=handle,
        publisher=publisher,
        group_id="fault-test-consumer",
    )
    await consumer.start()
    running = asyncio.create_task(consumer.run())
    try:
        await consumer.wait_ready()
        for mid in range(10):
            await publisher.publish(MARKET_PRICES, str(mid % 2), _tick(mid), correlation_id="c")
        proxy.cut()
        await asyncio.sleep(3)
        assert not running.done(), "the consumer must survive the outage"
        proxy.restore()
        for mid in range(10, 20):
            await publisher.publish(MARKET_PRICES, str(mid % 2), _tick(mid), correlation_id="c")
        for _ in range(300):
            if len(set(received)) >= 20:
                break
            await asyncio.sleep(0.1)
    finally:
        proxy.restore()
        await consumer.stop()
        await running
        await consumer.close()
        await publisher.stop()
    assert sorted(set(received), key=int) == [str(i) for i in range(20)]
