"""Wires settlement: the engine, the `trade.confirmed` consumer, and the relay that
publishes the settlement outbox to `settlement.events`."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine

from otc.bus.consumer import Consumer
from otc.bus.producer import Publisher
from otc.bus.topics import TRADE_CONFIRMED
from otc.clock import Clock, SystemClock
from otc.db import make_engine
from otc.outbox import OutboxRelay
from otc.service import Service
from otc.settings import Settings
from otc.unit_of_work import UnitOfWork
from settlement.adapters.repository import OUTBOX_TABLES
from settlement.domain.commands import BookTrade
from settlement.entrypoints.consumer import trade_confirmed_handler
from settlement.service_layer.handlers import Outcome, book_trade

SERVICE = "settlement"


class SettlementService:
    name = SERVICE

    def __init__(self, settings: Settings, *, group_id: str, clock: Clock) -> None:
        self._database_url = settings.require("database_url")
        self._bootstrap = settings.require("kafka_bootstrap")
        self._group_id = group_id
        self._clock = clock
        self._engine: AsyncEngine | None = None
        self._publisher: Publisher | None = None
        self._consumer: Consumer | None = None
        self._relay: OutboxRelay | None = None

    async def start(self) -> None:
        self._engine = engine = make_engine(self._database_url)
        self._publisher = Publisher(self._bootstrap, SERVICE, self._clock)
        await self._publisher.start()

        async def book(cmd: BookTrade) -> Outcome:
            uow = UnitOfWork(engine, OUTBOX_TABLES, producer=SERVICE, clock=self._clock)
            return await book_trade(cmd, uow)

        self._consumer = Consumer(
            service=SERVICE,
            bootstrap=self._bootstrap,
            topics=(TRADE_CONFIRMED,),
            handler=trade_confirmed_handler(book),
            publisher=self._publisher,
            group_id=self._group_id,
        )
        await self._consumer.start()
        self._relay = OutboxRelay(
            engine=engine,
            outbox=OUTBOX_TABLES.outbox,
            publisher=self._publisher,
            service=SERVICE,
            database_url=self._database_url,
        )

    def ready(self) -> bool:
        return self._consumer is not None and self._consumer.ready

    async def run(self) -> None:
        consumer, relay = self._started()
        relay_task = asyncio.create_task(relay.run(), name="settlement-outbox-relay")
        try:
            await consumer.run()
        finally:
            # The relay stops only once the consumer has finished its last transaction,
            # so its final drain publishes every event that transaction queued.
            await relay.stop()
            await relay_task

    async def stop(self) -> None:
        """Stops consuming; `run` then stops the relay after it drained the outbox."""
        if self._consumer is not None:
            await self._consumer.stop()

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.close()
        if self._publisher is not None:
            await self._publisher.stop()
        if self._engine is not None:
            await self._engine.dispose()

    def _started(self) -> tuple[Consumer, OutboxRelay]:
        if self._consumer is None or self._relay is None:
            raise RuntimeError("settlement service used before start()")
        return self._consumer, self._relay


def build(settings: Settings, *, group_id: str = SERVICE, clock: Clock | None = None) -> Service:
    return SettlementService(settings, group_id=group_id, clock=clock or SystemClock())
