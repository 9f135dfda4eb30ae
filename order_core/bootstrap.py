"""Wires order_core: consumer, outbox relay, deadline sweeper, audit sequencer and
the auditor API (beside the ops routes, on the ops port) in one process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta

import uvicorn

from order_core.adapters.checkpoint_file import CheckpointFile
from order_core.adapters.risk_client import RiskClient
from order_core.adapters.signing_key import load_signer
from order_core.adapters.tables import OUTBOX_TABLES
from order_core.entrypoints.audit_api import create_audit_app
from order_core.entrypoints.inbound import deliver
from order_core.service_layer.audit_proofs import AuditProofs
from order_core.service_layer.audit_queries import AuditQueries
from order_core.service_layer.deadlines import sweep
from order_core.service_layer.reconciling import reconcile
from order_core.service_layer.sequencing import Sequencer
from order_core.service_layer.transaction import Dependencies
from otc.auth import TokenVerifier
from otc.bus import topics
from otc.bus.consumer import Consumer
from otc.bus.envelope import Message
from otc.bus.producer import Publisher
from otc.clock import Clock, SystemClock
from otc.db import make_engine
from otc.http_server import http_server
from otc.logging import get_logger
from otc.outbox import OutboxRelay
from otc.quote_book import QuoteBook
from otc.redis_client import connect as connect_redis
from otc.settings import Settings

log = get_logger(__name__)

TOPICS = (
    topics.RFQ_QUOTES,
    topics.ORDER_COMMANDS,
    topics.LASTLOOK_RESPONSES,
    topics.SETTLEMENT_EVENTS,
)
CATCH_UP_TIMEOUT_S = 30.0


class OrderCore:
    name = "order-core"
    has_own_http = True  # the audit API and /healthz, /readyz, /metrics on the ops port

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self._settings = settings
        self._clock = clock or SystemClock()
        self._stopping = asyncio.Event()
        self._server: uvicorn.Server | None = None

    async def start(self) -> None:
        s = self._settings
        self._engine = make_engine(s.require("database_url"), pool_size=s.order_core_db_pool_size)
        self._redis = connect_redis(s.require("redis_url"))
        self._risk = RiskClient(s.risk_grpc_target, s.risk_grpc_timeout_ms / 1000)
        self.deps = Dependencies(
            engine=self._engine,
            quotes=QuoteBook(self._redis),
            risk=self._risk,
            clock=self._clock,
            last_look_window=timedelta(milliseconds=s.last_look_window_ms),
            reservation_ttl=timedelta(milliseconds=s.reservation_ttl_ms),
            last_look_grace=timedelta(milliseconds=s.last_look_grace_ms),
        )
        self._publisher = Publisher(s.require("kafka_bootstrap"), self.name, self._clock)
        await self._publisher.start()
        self._consumer = Consumer(
            service=self.name,
            bootstrap=s.require("kafka_bootstrap"),
            topics=TOPICS,
            handler=self._dispatch,
            publisher=self._publisher,
            group_id="order-core",
            session_timeout_ms=s.kafka_session_timeout_ms,
            fetch_max_wait_ms=s.kafka_fetch_max_wait_ms,
        )
        self._relay = OutboxRelay(
            engine=self._engine,
            outbox=OUTBOX_TABLES.outbox,
            publisher=self._publisher,
            service=self.name,
            database_url=s.require("database_url"),
            poll_interval=s.outbox_poll_ms / 1000,
        )
        if s.env == "production" and s.audit_signing_key_file is None:
            raise RuntimeError("OTC_AUDIT_SIGNING_KEY_FILE must be set in production")
        signer = load_signer(
            s.audit_signing_key_file or s.state_dir / "audit-signing-key.pem",
            create=s.env != "production",
        )
        self._sequencer = Sequencer(
            self._engine,
            signer,
            self._clock,
            every=s.audit_checkpoint_every,
            interval=timedelta(milliseconds=s.audit_checkpoint_interval_ms),
            checkpoint_file=CheckpointFile(s.audit_checkpoint_file)
            if s.audit_checkpoint_file
            else None,
        )
        # Its own small pool: a slow export holds a connection for as long as it
        # streams, and must not starve the order consumers of theirs.
        self._audit_engine = make_engine(
            s.require("database_url"), pool_size=s.order_core_audit_db_pool_size
        )
        if s.ops_port:
            app = create_audit_app(
                AuditQueries(self._audit_engine),
                AuditProofs(
                    self._audit_engine,
                    signer.public_key,
                    checkpoint_file=s.audit_checkpoint_file,
                ),
                authenticate=TokenVerifier.from_settings(s).verify,
                clock=self._clock,
                ready=self.ready,
            )
            self._server = http_server(app, "0.0.0.0", s.ops_port)
        await self._consumer.start()
        await self._consumer.wait_ready()

    def ready(self) -> bool:
        return not self._stopping.is_set() and self._consumer.ready

    async def _dispatch(self, topic: str, message: Message) -> None:
        await deliver(self.deps, message)

    async def _sweep_forever(self) -> None:
        await self._caught_up()
        await asyncio.gather(
            self._every(self._settings.deadline_sweep_interval_ms / 1000, "deadline sweep", sweep),
            self._every(
                self._settings.reconcile_interval_ms / 1000, "reconciliation", self._reconcile
            ),
        )

    async def _caught_up(self) -> None:
        """Deadlines wait until the backlog is handled: after an outage, answers the
        makers sent in time are on the topics, and must count before any sweep
        times their orders out."""
        catching_up = asyncio.ensure_future(self._consumer.wait_caught_up(CATCH_UP_TIMEOUT_S))
        stopping = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait({catching_up, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not catching_up.done():
            catching_up.cancel()
        elif isinstance(catching_up.exception(), TimeoutError):
            log.warning("backlog not handled in time; sweeping anyway", waited_s=CATCH_UP_TIMEOUT_S)

    async def _reconcile(self, deps: Dependencies) -> None:
        await reconcile(deps, timedelta(milliseconds=self._settings.reconcile_grace_ms))

    async def _every(
        self, interval_s: float, what: str, work: Callable[[Dependencies], Awaitable[object]]
    ) -> None:
        while not self._stopping.is_set():
            try:
                await work(self.deps)
            except Exception as exc:
                log.warning(f"{what} failed", error=f"{type(exc).__name__}: {exc}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), interval_s)

    async def run(self) -> None:
        serving = [self._server.serve()] if self._server is not None else []
        sequencing = self._sequencer.run(
            self._stopping, timedelta(milliseconds=self._settings.audit_sequencer_poll_ms)
        )
        await asyncio.gather(self._work(), self._relay.run(), sequencing, *serving)

    async def _work(self) -> None:
        try:
            await asyncio.gather(self._consumer.run(), self._sweep_forever())
        finally:
            # Drained in this order: the relay's last pass comes after the last
            # handler and sweep committed, so it publishes everything they wrote;
            # the ops port answers (readyz: 503) until then.
            await self._relay.stop()
            if self._server is not None:
                self._server.should_exit = True

    async def stop(self) -> None:
        self._stopping.set()
        await self._consumer.stop()

    async def close(self) -> None:
        await self._consumer.close()
        await self._publisher.stop()
        await self._risk.close()
        await self._redis.aclose()
        await self._audit_engine.dispose()
        await self._engine.dispose()


def build(settings: Settings) -> OrderCore:
    return OrderCore(settings)
