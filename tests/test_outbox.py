"""The transactional outbox relay on real PostgreSQL and Kafka: it never skips a
row that commits late, republishes (with the same event id) what a crash left
unmarked, keeps one key's events in order, and reports its lag."""

from __future__ import annotations

import asyncio
import importlib
import random
from collections.abc import AsyncIterator

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import MetaData, Table, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from otc import failpoints
from otc.bus.envelope import encode
from otc.bus.producer import Publisher
from otc.clock import SystemClock
from otc.contracts import events_pb2
from otc.ids import new_id
from otc.outbox import OutboxRelay, outbox_table, processed_events_table
from otc.unit_of_work import OutboxTables, UnitOfWork
from stack.infra.provider import Endpoints
from tests.kafka_tap import KafkaTap

TOPIC = "market.prices"  # any existing topic; the tap filters on its own keys


@pytest.fixture
async def outbox(engine: AsyncEngine) -> Table:
    """A fresh schema with the same outbox DDL as the services' schemas."""
    schema = f"outbox_{new_id()[-12:]}"
    ddl = importlib.import_module("migrations.versions.0001_skeleton")._outbox_and_inbox(schema)
    async with engine.begin() as conn:
        await conn.execute(text(f"CREATE SCHEMA {schema}"))
        raw = await conn.get_raw_connection()
        await raw.driver_connection.execute(ddl)  # type: ignore[union-attr]
    return outbox_table(MetaData(schema=schema))


@pytest.fixture
async def publisher(endpoints: Endpoints) -> AsyncIterator[Publisher]:
    pub = Publisher(endpoints.kafka_bootstrap, "outbox-test")
    await pub.start()
    yield pub
    await pub.stop()


def _row(key: str, mid: str) -> dict[str, object]:
    event_id, raw = encode(
        events_pb2.PriceTick(instrument="TEST", mid=mid),
        producer="outbox-test",
        occurred_at=SystemClock().now(),
        correlation_id=key,
    )
    return {"topic": TOPIC, "key": key, "event_id": event_id, "payload": raw}


def _relay(
    engine: AsyncEngine,
    outbox: Table,
    publisher: Publisher,
    endpoints: Endpoints,
    batch_size: int = 50,
) -> OutboxRelay:
    return OutboxRelay(
        engine=engine,
        outbox=outbox,
        publisher=publisher,
        service=f"test-{outbox.schema}",
        database_url=endpoints.database_url,
        batch_size=batch_size,
    )


async def test_a_row_that_commits_late_with_a_lower_id_is_still_published(
    engine: AsyncEngine, outbox: Table, publisher: Publisher, endpoints: Endpoints
) -> None:
    key = new_id()
    relay = _relay(engine, outbox, publisher, endpoints)
    async with KafkaTap(endpoints.kafka_bootstrap, TOPIC) as tap:
        async with engine.connect() as slow:
            slow_tx = await slow.begin()
            await slow.execute(outbox.insert(), [_row(key, "1")])  # takes the lower id
            async with engine.begin() as fast:
                await fast.execute(outbox.insert(), [_row(key, "2")])
            assert await relay.publish_batch() == 1
            await slow_tx.commit()
        assert await relay.publish_batch() == 1
        seen = await tap.wait_for(lambda s: s.key == key, count=2)
    assert sorted(s.message.payload.mid for s in seen if s.message) == ["1", "2"]  # type: ignore[attr-defined]
    async with engine.connect() as conn:
        unsent = await conn.execute(select(func.count()).where(outbox.c.sent_at.is_(None)))
        assert unsent.scalar_one() == 0


class _CrashAfterSend(Publisher):
    """Publishes, then dies before the relay can mark the rows sent."""

    async def send_many(self, records: list[tuple[str, str, bytes]]) -> None:
        await super().send_many(records)
        raise ConnectionError("process killed after publishing")


async def test_rows_published_before_a_crash_are_published_again_with_the_same_ids(
    engine: AsyncEngine, outbox: Table, publisher: Publisher, endpoints: Endpoints
) -> None:
    key = new_id()
    rows = [_row(key, str(i)) for i in range(3)]
    async with engine.begin() as conn:
        await conn.execute(outbox.insert(), rows)
    crashing = _CrashAfterSend(endpoints.kafka_bootstrap, "outbox-test")
    await crashing.start()
    try:
        async with KafkaTap(endpoints.kafka_bootstrap, TOPIC) as tap:
            with pytest.raises(ConnectionError):
                await _relay(engine, outbox, crashing, endpoints).publish_batch()
            assert await _relay(engine, outbox, publisher, endpoints).publish_batch() == 3
            seen = await tap.wait_for(lambda s: s.key == key, count=6)
    finally:
        await crashing.stop()
    ids = [s.message.event_id for s in seen if s.message]
    assert sorted(ids) == sorted([r["event_id"] for r in rows] * 2)  # duplicates, never new ids


async def _unsent(engine: AsyncEngine, outbox: Table) -> int:
    async with engine.connect() as conn:
        query = select(func.count()).where(outbox.c.sent_at.is_(None))
        return int((await conn.execute(query)).scalar_one())


class _JitteryPublisher(Publisher):
    async def send_many(self, records: list[tuple[str, str, bytes]]) -> None:
        await asyncio.sleep(random.uniform(0, 0.03))
        await super().send_many(records)


async def test_concurrent_relays_keep_one_keys_events_in_order(
    engine: AsyncEngine, outbox: Table, publisher: Publisher, endpoints: Endpoints
) -> None:
    key = new_id()
    async with engine.begin() as conn:
        await conn.execute(outbox.insert(), [_row(key, str(i)) for i in range(200)])
    # one producer each, as separate replicas would have, each with its own hiccups
    publishers = [_JitteryPublisher(endpoints.kafka_bootstrap, f"relay-{i}") for i in range(3)]
    for p in publishers:
        await p.start()
    relays = [_relay(engine, outbox, p, endpoints, batch_size=5) for p in publishers]

    async def drain(relay: OutboxRelay) -> None:
        # only one relay holds the schema's lock at a time; the others find nothing
        # to do until the rows are gone
        for _ in range(2000):
            if await relay.publish_batch() == 0 and await _unsent(engine, outbox) == 0:
                return
            await asyncio.sleep(0.001)

    try:
        async with KafkaTap(endpoints.kafka_bootstrap, TOPIC) as tap:
            await asyncio.gather(*(drain(r) for r in relays))
            seen = await tap.wait_for(lambda s: s.key == key, count=200)
    finally:
        for p in publishers:
            await p.stop()
    mids = [int(s.message.payload.mid) for s in seen if s.message]  # type: ignore[attr-defined]
    assert mids == list(range(200))


async def test_the_relay_reports_the_age_of_the_oldest_unsent_row(
    engine: AsyncEngine, outbox: Table, publisher: Publisher, endpoints: Endpoints
) -> None:
    async with engine.begin() as conn:
        await conn.execute(outbox.insert(), [_row(new_id(), "1")])
        await conn.execute(
            outbox.update().values(created_at=func.now() - text("interval '5 seconds'"))
        )
    relay = _relay(engine, outbox, publisher, endpoints)
    await relay.publish_batch()
    lag = REGISTRY.get_sample_value("otc_outbox_lag_seconds", {"service": f"test-{outbox.schema}"})
    assert lag is not None
    assert lag >= 5


async def test_the_commit_failpoints_fire_only_for_a_transaction_with_events(
    engine: AsyncEngine, outbox: Table
) -> None:
    tables = OutboxTables(outbox, processed_events_table(MetaData(schema=outbox.schema)))
    failpoints.arm("order_core.uow.before_commit=raise")
    try:
        async with UnitOfWork(engine, tables, producer="order-core", clock=SystemClock()) as idle:
            await idle.commit()  # an idle pass: nothing to publish, nothing to crash at
        assert failpoints.armed() == ["order_core.uow.before_commit=raise:1"]
        async with UnitOfWork(engine, tables, producer="order-core", clock=SystemClock()) as uow:
            uow.emit(TOPIC, "k", events_pb2.PriceTick(instrument="TEST"), correlation_id="k")
            with pytest.raises(failpoints.FailpointError):
                await uow.commit()
    finally:
        failpoints.disarm()
    async with engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(outbox))).scalar_one() == 0
