"""A message that waits for another to arrive first holds up only its own
partition: the consumer keeps fetching and handling the others meanwhile."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from otc.bus.consumer import Consumer
from otc.bus.envelope import Message, encode
from otc.bus.producer import Publisher
from otc.contracts import events_pb2
from otc.errors import NotYetKnown
from otc.ids import new_id
from stack.infra.provider import Endpoints


async def test_a_waiting_message_does_not_stop_other_partitions(endpoints: Endpoints) -> None:
    topic = f"lanes-test-{new_id()[-12:]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=endpoints.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    finally:
        await admin.close()

    arrived = asyncio.Event()  # what the waiting message waits for
    first_done = asyncio.Event()
    attempts = 0

    async def handle(_: str, message: Message) -> None:
        nonlocal attempts
        assert isinstance(message.payload, events_pb2.PriceTick)
        if message.payload.instrument == "FIRST":
            attempts += 1
            if not arrived.is_set():
                raise NotYetKnown("the other message has not arrived yet")
            first_done.set()
        else:
            arrived.set()

    publisher = Publisher(endpoints.kafka_bootstrap, "lanes-test")
    await publisher.start()
    consumer = Consumer(
        service="lanes-test",
        bootstrap=endpoints.kafka_bootstrap,
        topics=(topic,),
        handler=handle,
        publisher=publisher,
        group_id=f"lanes-test-{new_id()}",
    )
    await consumer.start()
    running = asyncio.create_task(consumer.run())
    producer = AIOKafkaProducer(bootstrap_servers=endpoints.kafka_bootstrap)
    await producer.start()
    try:
        await consumer.wait_ready()
        await producer.send_and_wait(topic, _raw("FIRST"), partition=0)
        for _ in range(100):  # until the first message is being retried
            if attempts >= 2:
                break
            await asyncio.sleep(0.05)
        await producer.send_and_wait(topic, _raw("SECOND"), partition=1)
        await asyncio.wait_for(arrived.wait(), 10)
        await asyncio.wait_for(first_done.wait(), 10)  # and the waiting one then goes through
    finally:
        await producer.stop()
        await consumer.stop()
        await running
        await consumer.close()
        await publisher.stop()


def _raw(instrument: str) -> bytes:
    _, raw = encode(
        events_pb2.PriceTick(instrument=instrument, mid="1"),
        producer="lanes-test",
        occurred_at=datetime.now(UTC),
        correlation_id=instrument,
    )
    return raw
