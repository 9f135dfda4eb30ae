"""Wires the credit service: engine, clock and handlers behind a grpc.aio server with
health checking and reflection, the sweeper that expires overdue reservations, and
the `settlement.events` consumer that frees the credit of settled trades.

`build` returns an otc.service.Service, so `serve` runs it like every other service:
start() binds the port, reports SERVING and joins the consumer group; ready() waits
for partitions as well, since a replica without them frees no settled exposure;
run() consumes and sweeps until stop(), and ends the process if either fails;
stop() reports NOT_SERVING first (load balancers drain), stops consuming and
sweeping, and lets in-flight calls finish within a grace period; close() lets go of
Kafka and the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from sqlalchemy.ext.asyncio import AsyncEngine

from otc import tracing
from otc.bus.consumer import Consumer
from otc.bus.producer import Publisher
from otc.bus.topics import SETTLEMENT_EVENTS
from otc.clock import Clock, SystemClock
from otc.contracts import risk_limits_pb2_grpc as pb_grpc
from otc.db import make_engine
from otc.errors import is_transient
from otc.logging import get_logger
from otc.service import Service
from otc.settings import Settings
from risk_limits.entrypoints.consumer import settlement_events_handler
from risk_limits.entrypoints.grpc_server import SERVICE_NAME, RiskLimitsServicer
from risk_limits.service_layer.settling import SWEEP_BATCH, expire_overdue
from risk_limits.service_layer.unit_of_work import Dependencies

log = get_logger(__name__)

SERVICE = "risk-limits"
STOP_GRACE_S = 5.0


class RiskLimitsService:
    name = SERVICE

    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        deps: Dependencies,
        *,
        bootstrap: str,
        group_id: str | None,
    ) -> None:
        self._settings = settings
        self._bootstrap = bootstrap
        self._group_id = group_id
        self._engine = engine
        self._deps = deps
        self._server: grpc.aio.Server | None = None
        self._health = health.aio.HealthServicer()
        self._publisher: Publisher | None = None
        self._consumer: Consumer | None = None
        self._stopping = asyncio.Event()
        self.port: int | None = None

    async def start(self) -> None:
        server = grpc.aio.server(interceptors=tracing.server_interceptors())
        pb_grpc.add_RiskLimitsServicer_to_server(RiskLimitsServicer(self._deps), server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        port: int = server.add_insecure_port(f"0.0.0.0:{self._settings.risk_grpc_port}")
        await server.start()
        self._server, self.port = server, port
        for service in ("", SERVICE_NAME):
            await self._health.set(service, health_pb2.HealthCheckResponse.SERVING)
        log.info("risk limits listening", port=port)

        # The publisher only dead-letters what the consumer cannot apply.
        self._publisher = Publisher(self._bootstrap, SERVICE, self._deps.clock)
        await self._publisher.start()
        self._consumer = Consumer(
            service=SERVICE,
            bootstrap=self._bootstrap,
            topics=(SETTLEMENT_EVENTS,),
            handler=settlement_events_handler(self._deps),
            publisher=self._publisher,
            group_id=self._group_id,
            session_timeout_ms=self._settings.kafka_session_timeout_ms,
            fetch_max_wait_ms=self._settings.kafka_background_fetch_max_wait_ms,
        )
        await self._consumer.start()

    def ready(self) -> bool:
        return (
            self._server is not None
            and not self._stopping.is_set()
            and self._consumer is not None
            and self._consumer.ready
        )

    async def run(self) -> None:
        if self._consumer is None:
            raise RuntimeError("risk limits service run before start()")
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._consumer.run(), name="risk-settlement-consumer")
            tasks.create_task(self._sweep_until_stopped(), name="risk-reservation-sweeper")

    async def stop(self) -> None:
        self._stopping.set()
        if self._consumer is not None:
            await self._consumer.stop()
        await self._health.enter_graceful_shutdown()
        if self._server is not None:
            await self._server.stop(STOP_GRACE_S)

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.close()
        if self._publisher is not None:
            await self._publisher.stop()
        await self._engine.dispose()

    async def _sweep_until_stopped(self) -> None:
        while not self._stopping.is_set():
            await self._sweep()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.reservation_sweep_interval_ms / 1000):
                    await self._stopping.wait()

    async def _sweep(self) -> None:
        # A failing sweep must not end the loop: the next tick retries, and a
        # reservation left FROZEN past its deadline only waits a little longer.
        try:
            while await expire_overdue(self._deps) == SWEEP_BATCH:
                if self._stopping.is_set():
                    return
        except Exception as exc:
            if not is_transient(exc):
                log.exception("reservation sweep failed")
            else:
                log.warning("reservation sweep failed; retrying", error=repr(exc))


def build(
    settings: Settings, *, group_id: str | None = SERVICE, clock: Clock | None = None
) -> Service:
    """`group_id=None` reads every partition of `settlement.events` from the start
    with no group to join: fast to start, for tests; replicas need the group."""
    bootstrap = settings.require("kafka_bootstrap")
    engine = make_engine(
        settings.require("database_url"), pool_size=settings.risk_limits_db_pool_size
    )
    deps = Dependencies(
        engine=engine,
        clock=clock or SystemClock(),
        reservation_ttl=timedelta(milliseconds=settings.reservation_ttl_ms),
    )
    return RiskLimitsService(settings, engine, deps, bootstrap=bootstrap, group_id=group_id)
