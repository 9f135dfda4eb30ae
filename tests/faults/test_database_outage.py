"""Consumers across a database outage: PostgreSQL cut off for seconds in the middle
of a stream loses nothing and applies nothing twice; a database that stops
answering makes calls fail within their timeouts instead of hanging."""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import AsyncIterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from sqlalchemy import Column, Integer, MetaData, Table, Text, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from otc.bus.consumer import Consumer
from otc.bus.envelope import Message
from otc.bus.producer import Publisher
from otc.clock import SystemClock
from otc.contracts import events_pb2
from otc.db import CONNECT_TIMEOUT_S, make_engine
from otc.ids import new_id
from otc.outbox import outbox_table, processed_events_table
from otc.unit_of_work import OutboxTables, UnitOfWork
from stack.infra.provider import Endpoints
from tests.faults.proxy import TcpProxy

MESSAGES = 120


@pytest.fixture
async def proxy(endpoints: Endpoints) -> AsyncIterator[TcpProxy]:
    port = int(endpoints.database_url.rsplit(":", 1)[1].split("/")[0])
    proxy = TcpProxy("127.0.0.1", port)
    await proxy.start()
    yield proxy
    await proxy.stop()


def _through(endpoints: Endpoints, proxy: TcpProxy) -> str:
    head, tail = endpoints.database_url.rsplit(":", 1)
    return f"{head}:{proxy.port}/{tail.split('/', 1)[1]}"


async def _scratch_schema(engine: AsyncEngine) -> tuple[OutboxTables, Table]:
    schema = f"fault_{new_id()[-12:]}"
    ddl = importlib.import_module("migrations.versions.0001_skeleton")._outbox_and_inbox(schema)
    async with engine.begin() as conn:
        await conn.execute(text(f"CREATE SCHEMA {schema}"))
        await conn.execute(text(f"CREATE TABLE {schema}.applied (seq integer, event_id text)"))
        raw = await conn.get_raw_connection()
        await raw.driver_connection.execute(ddl)  # type: ignore[union-attr]
    metadata = MetaData(schema=schema)
    applied = Table("applied", metadata, Column("seq", Integer), Column("event_id", Text))
    return OutboxTables(outbox_table(metadata), processed_events_table(metadata)), applied


async def _topic(bootstrap: str) -> str:
    name = f"fault-test-{new_id()[-12:]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()
    return name


async def test_a_database_outage_mid_stream_loses_nothing_and_repeats_nothing(
    endpoints: Endpoints, engine: AsyncEngine, proxy: TcpProxy
) -> None:
    tables, applied = await _scratch_schema(engine)
    topic = await _topic(endpoints.kafka_bootstrap)
    flaky = make_engine(_through(endpoints, proxy), pool_size=3)

    async def handle(_: str, message: Message) -> None:
        assert isinstance(message.payload, events_pb2.PriceTick)
        uow = UnitOfWork(flaky, tables, producer="fault-test", clock=SystemClock())
        async with uow:
            if not await uow.mark_processed("fault-test", message.event_id):
                return
            await uow.conn.execute(
                applied.insert().values(seq=int(message.payload.mid), event_id=message.event_id)
            )
            await uow.commit()

    publisher = Publisher(endpoints.kafka_bootstrap, "fault-test")
    await publisher.start()
    consumer = Consumer(
        service="fault-test",
        bootstrap=endpoints.kafka_bootstrap,
        topics=(topic,),
        handler=handle,
        publisher=publisher,
        group_id=f"fault-test-{new_id()}",
    )
    await consumer.start()
    running = asyncio.create_task(consumer.run())
    try:
        await consumer.wait_ready()
        for seq in range(MESSAGES):
            await publisher.publish(
                topic,
                str(seq % 7),
                events_pb2.PriceTick(instrument="TEST", mid=str(seq)),
                correlation_id="fault-test",
            )
            if seq == MESSAGES // 3:
                proxy.cut()
                await asyncio.sleep(3)  # the consumer keeps failing and retrying meanwhile
                proxy.restore()
        for _ in range(300):  # up to a minute to catch up after the outage
            if await _count(engine, applied) >= MESSAGES:
                break
            await asyncio.sleep(0.2)
    finally:
        await consumer.stop()
        await running
        await consumer.close()
        await publisher.stop()
        await flaky.dispose()

    async with engine.connect() as conn:
        seqs = sorted((await conn.execute(select(applied.c.seq))).scalars())
    assert seqs == list(range(MESSAGES)), "every message applied exactly once"


async def test_a_database_that_stops_answering_fails_fast_instead_of_hanging(
    endpoints: Endpoints, proxy: TcpProxy
) -> None:
    proxy.blackhole()
    silent = make_engine(_through(endpoints, proxy), pool_size=1)
    started = time.monotonic()
    try:
        with pytest.raises((TimeoutError, OSError)):
            async with silent.connect() as conn:
                await conn.execute(text("SELECT 1"))
    finally:
        await silent.dispose()
    assert time.monotonic() - started < CONNECT_TIMEOUT_S + 3


async def _count(engine: AsyncEngine, applied: Table) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(applied))).scalar_one())
