"""Wires the edge: HTTP/WS server, the order-events feed and the RFQ outbox relay."""

from __future__ import annotations

import asyncio

from otc.auth import TokenVerifier
from otc.bus import topics
from otc.bus.consumer import Consumer
from otc.bus.producer import Publisher
from otc.bus.requests import Replies
from otc.clock import Clock, SystemClock
from otc.db import make_engine
from otc.http_server import http_server
from otc.logging import get_logger
from otc.outbox import OutboxRelay
from otc.rate_limit import TokenBuckets
from otc.settings import Settings
from rfq_service.adapters.tables import OUTBOX_TABLES
from rfq_service.entrypoints.audit_proxy import audit_router
from rfq_service.entrypoints.http import create_app
from rfq_service.entrypoints.hub import Hub
from rfq_service.entrypoints.order_feed import OrderFeed
from rfq_service.entrypoints.price_ticks import price_ticks
from rfq_service.entrypoints.ws import SocketDeps
from rfq_service.service_layer.edge import Edge
from rfq_service.service_layer.prices import PriceBoard

log = get_logger(__name__)


class RfqService:
    name = "rfq-service"
    has_own_http = True  # serves /healthz, /readyz and /metrics on its API port

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self._settings = settings
        self._clock = clock or SystemClock()
        self._draining = False

    async def start(self) -> None:
        s = self._settings
        self._engine = make_engine(s.require("database_url"), pool_size=s.rfq_service_db_pool_size)
        self._publisher = Publisher(s.require("kafka_bootstrap"), self.name, self._clock)
        await self._publisher.start()
        replies, hub = Replies(), Hub(max_sessions=s.ws_max_sessions)
        edge = Edge(
            engine=self._engine,
            replies=replies,
            clock=self._clock,
            reply_timeout_s=s.accept_reply_timeout_ms / 1000,
        )
        feed = OrderFeed(self._engine, hub, replies, self._clock)
        self._consumer = Consumer(
            service=self.name,
            bootstrap=s.require("kafka_bootstrap"),
            topics=(topics.ORDER_EVENTS,),
            handler=feed.handle,
            publisher=self._publisher,
            group_id=None,
            from_end=True,
        )
        await self._consumer.start()
        self._catch_up = Consumer(
            service=self.name,
            bootstrap=s.require("kafka_bootstrap"),
            topics=(topics.ORDER_EVENTS,),
            handler=OrderFeed(self._engine, None, None, self._clock).handle,
            publisher=self._publisher,
            group_id="rfq-service-read-model",
            session_timeout_ms=s.kafka_session_timeout_ms,
            # the live consumer above keeps the read model current; this one only
            # makes sure nothing is missed across restarts
            fetch_max_wait_ms=s.kafka_background_fetch_max_wait_ms,
        )
        await self._catch_up.start()
        self._caught_up = False
        self._relay = OutboxRelay(
            engine=self._engine,
            outbox=OUTBOX_TABLES.outbox,
            publisher=self._publisher,
            service=self.name,
            database_url=s.require("database_url"),
            poll_interval=s.outbox_poll_ms / 1000,
        )
        verify = TokenVerifier.from_settings(s).verify
        board = PriceBoard()
        self._prices = Consumer(
            service=self.name,
            bootstrap=s.require("kafka_bootstrap"),
            topics=(topics.MARKET_PRICES,),
            handler=price_ticks(board),
            publisher=self._publisher,
            group_id=None,
            from_end=True,
        )
        await self._prices.start()
        buckets = TokenBuckets(rate_per_s=s.rate_limit_per_s, burst=s.rate_limit_burst)
        socket = SocketDeps(
            edge=edge,
            hub=hub,
            verify=verify,
            makers=s.maker_ids,
            buckets=buckets,
            prices=board,
            price_max_hz=s.price_max_hz,
        )
        app = create_app(
            edge=edge,
            socket=socket,
            verify=verify,
            buckets=buckets,
            makers=s.maker_ids,
            ready=self.ready,
            routers=(audit_router(s.audit_api_url, authenticate=verify),),
        )
        self._server = http_server(app, s.http_host, s.http_port)

    def ready(self) -> bool:
        """Ready once the read model holds everything published before the start:
        a reconnecting client's snapshot then misses nothing."""
        return (
            not self._draining and self._caught_up and self._consumer.ready and self._prices.ready
        )

    async def _catch_up_then_ready(self) -> None:
        while not self._draining:
            try:
                await self._catch_up.wait_caught_up(timeout=60)
            except TimeoutError as exc:
                log.warning("read model still catching up", error=str(exc))
                continue
            self._caught_up = True
            return

    async def run(self) -> None:
        await asyncio.gather(
            self._serve_then_flush(),
            self._consumer.run(),
            self._catch_up.run(),
            self._catch_up_then_ready(),
            self._prices.run(),
            self._relay.run(),
        )

    async def _serve_then_flush(self) -> None:
        try:
            await self._server.serve()
        finally:
            # Only once the requests in flight are answered: an accept waits for
            # its answer on the order feed, and what they wrote to the outbox
            # goes out in the relay's last pass.
            await self._consumer.stop()
            await self._catch_up.stop()
            await self._prices.stop()
            await self._relay.stop()

    async def stop(self) -> None:
        self._draining = True
        self._server.should_exit = True

    async def close(self) -> None:
        await self._consumer.close()
        await self._catch_up.close()
        await self._prices.close()
        await self._publisher.stop()
        await self._engine.dispose()


def build(settings: Settings) -> RfqService:
    return RfqService(settings)
