"""One contract for every unit of work, run against the PostgreSQL one and the
in-memory fake: a commit publishes what was emitted, a rollback drops it, the inbox
answers False for a message it has seen, the commit hooks see exactly what is
published, and nothing works outside `async with`."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import MetaData, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from otc import failpoints
from otc.bus.envelope import decode
from otc.clock import SystemClock
from otc.contracts import events_pb2
from otc.fake_unit_of_work import FakeUnitOfWork
from otc.ids import new_id
from otc.outbox import outbox_table, processed_events_table
from otc.unit_of_work import BaseUnitOfWork, OutboxTables, Outgoing, UnitOfWork

TOPIC = "market.prices"
CONSUMER = "contract-test"


def tick(mid: str = "1") -> events_pb2.PriceTick:
    return events_pb2.PriceTick(instrument="TEST", mid=mid)


class Recording(BaseUnitOfWork):
    """Records what the commit hooks are given, and when."""

    calls: list[tuple[str, list[Outgoing]]]

    async def before_commit(self, outgoing: Sequence[Outgoing]) -> None:
        self.calls.append(("before", list(outgoing)))

    def after_commit(self, outgoing: Sequence[Outgoing]) -> None:
        self.calls.append(("after", list(outgoing)))


class RecordingUnitOfWork(Recording, UnitOfWork):
    pass


class RecordingFake(Recording, FakeUnitOfWork):
    pass


@dataclass
class World:
    """Makes units of work over one store and reads back what the store published."""

    make: Any
    read_published: Any
    made: list[BaseUnitOfWork] = field(default_factory=list)

    def uow(self) -> Any:
        uow = self.make()
        uow.calls = []
        self.made.append(uow)
        return uow

    async def published(self) -> list[bytes]:
        return list(await self.read_published())


class Contract:
    async def test_a_commit_publishes_what_was_emitted(self, world: World) -> None:
        async with world.uow() as uow:
            event_id = uow.emit(TOPIC, "k", tick("7"), correlation_id="c")
            await uow.commit()
        [raw] = await world.published()
        sent = decode(raw)
        assert sent.event_id == event_id
        assert sent.payload == tick("7")

    async def test_leaving_without_a_commit_drops_what_was_emitted(self, world: World) -> None:
        async with world.uow() as uow:
            uow.emit(TOPIC, "k", tick(), correlation_id="c")
        with pytest.raises(ZeroDivisionError):  # noqa: PT012 - the raise must come after the emit
            async with world.uow() as uow:
                uow.emit(TOPIC, "k", tick(), correlation_id="c")
                _ = 1 / 0
        assert await world.published() == []

    async def test_the_inbox_answers_false_for_a_message_already_processed(
        self, world: World
    ) -> None:
        message = new_id()
        async with world.uow() as uow:
            assert await uow.mark_processed(CONSUMER, message) is True
            await uow.commit()
        async with world.uow() as uow:
            assert await uow.mark_processed(CONSUMER, message) is False
            assert await uow.mark_processed("another-consumer", message) is True

    async def test_a_rolled_back_transaction_leaves_its_message_unprocessed(
        self, world: World
    ) -> None:
        message = new_id()
        async with world.uow() as uow:
            assert await uow.mark_processed(CONSUMER, message) is True
        async with world.uow() as uow:
            assert await uow.mark_processed(CONSUMER, message) is True

    async def test_a_unit_of_work_used_outside_async_with_raises(self, world: World) -> None:
        uow = world.uow()
        with pytest.raises(RuntimeError, match="outside `async with`"):
            await uow.commit()
        with pytest.raises(RuntimeError, match="outside `async with`"):
            await uow.mark_processed(CONSUMER, new_id())
        with pytest.raises(RuntimeError, match="outside `async with`"):
            uow.emit(TOPIC, "k", tick(), correlation_id="c")
        async with uow:
            pass
        with pytest.raises(RuntimeError, match="outside `async with`"):
            await uow.commit()

    async def test_the_commit_hooks_see_what_is_published_as_consumers_decode_it(
        self, world: World
    ) -> None:
        payload = tick("3")
        async with world.uow() as uow:
            uow.emit(TOPIC, "k", payload, correlation_id="c", causation_id="cause")
            payload.mid = "changed after the emit"
            assert uow.calls == []
            await uow.commit()
        assert [(when, len(outgoing)) for when, outgoing in uow.calls] == [
            ("before", 1),
            ("after", 1),
        ]
        [seen] = uow.calls[0][1]
        assert uow.calls[1][1] == [seen]
        sent = decode(seen.envelope)
        assert (seen.event_id, seen.type, seen.occurred_at, seen.producer) == (
            sent.event_id,
            sent.type,
            sent.occurred_at,
            sent.producer,
        )
        assert (seen.correlation_id, seen.causation_id) == ("c", "cause")
        assert (seen.topic, seen.key) == (TOPIC, "k")
        assert seen.payload == sent.payload == tick("3")
        assert await world.published() == [seen.envelope]

    async def test_the_commit_failpoints_fire_only_for_a_transaction_that_publishes(
        self, world: World
    ) -> None:
        failpoints.arm("order_core.uow.before_commit=raise")
        try:
            async with world.uow() as idle:
                await idle.commit()
            assert failpoints.armed() == ["order_core.uow.before_commit=raise:1"]
            async with world.uow() as uow:
                uow.emit(TOPIC, "k", tick(), correlation_id="c")
                with pytest.raises(failpoints.FailpointError):
                    await uow.commit()
        finally:
            failpoints.disarm()
        assert await world.published() == []


class TestPostgres(Contract):
    @pytest.fixture
    async def world(self, engine: AsyncEngine) -> World:
        schema = f"uow_{new_id()[-12:]}"
        migration = importlib.import_module("migrations.versions.0001_skeleton")
        async with engine.begin() as conn:
            await conn.execute(text(f"CREATE SCHEMA {schema}"))
            raw = await conn.get_raw_connection()
            await raw.driver_connection.execute(migration._outbox_and_inbox(schema))  # type: ignore[union-attr]
        metadata = MetaData(schema=schema)
        tables = OutboxTables(outbox_table(metadata), processed_events_table(metadata))

        async def published() -> list[bytes]:
            async with engine.connect() as conn:
                query = select(tables.outbox.c.payload).order_by(tables.outbox.c.id)
                return list((await conn.execute(query)).scalars())

        return World(
            lambda: RecordingUnitOfWork(engine, tables, producer="order-core", clock=SystemClock()),
            published,
        )


class TestInMemory(Contract):
    @pytest.fixture
    def world(self) -> World:
        store = RecordingFake(producer="order-core")

        async def published() -> list[bytes]:
            return [o.envelope for o in store.published]

        return World(lambda: store, published)
