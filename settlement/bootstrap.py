"""Wires settlement: the engine, the `trade.confirmed` consumer, the sweep that
retries refused settlements, and the relay that publishes the settlement outbox
to `settlement.events`."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from otc.bus.consumer import Consumer
from otc.bus.producer import Publisher
from otc.bus.topics import TRADE_CONFIRMED
from otc.calendar import CALENDARS
from otc.clock import Clock, SystemClock
from otc.db import make_engine
from otc.logging import get_logger
from otc.outbox import OutboxRelay
from otc.service import Service
from otc.settings import Settings
from settlement.adapters.tables import OUTBOX_TABLES
from settlement.domain.commands import BookTrade
from settlement.domain.instructions import RetryPolicy
from settlement.entrypoints.consumer import trade_confirmed_handler
from settlement.service_layer.handlers import Outcome, book_trade
from settlement.service_layer.settling import Rules, settle_due
from settlement.service_layer.unit_of_work import SettlementUnitOfWork

SERVICE = "settlement"

log = get_logger(__name__)


def rules(settings: Settings) -> Rules:
    base = timedelta(milliseconds=settings.settlement_retry_base_ms)
    return Rules(
        calendar=CALENDARS[settings.calendar],
        retry=RetryPolicy(
            max_attempts=settings.settlement_max_attempts,
            base_delay=base,
            max_delay=max(base, timedelta(milliseconds=settings.settlement_retry_max_ms)),
        ),
    )


class SettlementService:
    name = SERVICE

    def __init__(self, settings: Settings, *, group_id: str, clock: Clock) -> None:
        self._database_url = settings.require("database_url")
        self._bootstrap = settings.require("kafka_bootstrap")
        self._group_id = group_id
        self._session_timeout_ms = settings.kafka_session_timeout_ms
        self._fetch_max_wait_ms = settings.kafka_fetch_max_wait_ms
        self._pool_size = settings.settlement_db_pool_size
        self._retry_sweep_interval_s = settings.settlement_retry_sweep_interval_ms / 1000
        self._outbox_poll_s = settings.outbox_poll_ms / 1000
        self._clock = clock
        self._rules = rules(settings)
        self._stopping = asyncio.Event()
        self._engine: AsyncEngine | None = None
        self._publisher: Publisher | None = None
        self._consumer: Consumer | None = None
        self._relay: OutboxRelay | None = None

    async def start(self) -> None:
        self._engine = engine = make_engine(self._database_url, pool_size=self._pool_size)
        self._publisher = Publisher(self._bootstrap, SERVICE, self._clock)
        await self._publisher.start()

        async def book(cmd: BookTrade) -> Outcome:
            return await book_trade(cmd, self._uow(), self._rules)

        self._consumer = Consumer(
            service=SERVICE,
            bootstrap=self._bootstrap,
            topics=(TRADE_CONFIRMED,),
            handler=trade_confirmed_handler(book),
            publisher=self._publisher,
            group_id=self._group_id,
            session_timeout_ms=self._session_timeout_ms,
            fetch_max_wait_ms=self._fetch_max_wait_ms,
        )
        await self._consumer.start()
        self._relay = OutboxRelay(
            engine=engine,
            outbox=OUTBOX_TABLES.outbox,
            publisher=self._publisher,
            service=SERVICE,
            database_url=self._database_url,
            poll_interval=self._outbox_poll_s,
        )

    def _uow(self) -> SettlementUnitOfWork:
        assert self._engine is not None
        return SettlementUnitOfWork(self._engine, clock=self._clock)

    def ready(self) -> bool:
        return self._consumer is not None and self._consumer.ready

    async def _retry_forever(self) -> None:
        while not self._stopping.is_set():
            try:
                while await settle_due(self._uow, self._rules.retry):
                    pass
            except Exception as exc:
                log.warning("settlement retry sweep failed", error=f"{type(exc).__name__}: {exc}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._retry_sweep_interval_s)

    async def run(self) -> None:
        consumer, relay = self._started()
        relay_task = asyncio.create_task(relay.run(), name="settlement-outbox-relay")
        retry_task = asyncio.create_task(self._retry_forever(), name="settlement-retries")
        try:
            await consumer.run()
        finally:
            # The relay stops only once the consumer and the retry sweep have finished
            # their last transactions, so its final drain publishes what they queued.
            self._stopping.set()
            await retry_task
            await relay.stop()
            await relay_task

    async def stop(self) -> None:
        """Stops consuming; `run` then stops the relay after it drained the outbox."""
        self._stopping.set()
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
