"""Wires one maker's quoter from settings and the import path of its strategy, and
the market-maker gateway for bots.

`build` and `build_gateway` must run inside the event loop that will run the
service, because the Kafka clients bind to the running loop when they are created.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from functools import partial

from redis.asyncio import Redis

from otc.auth import TokenVerifier
from otc.bus.consumer import Consumer
from otc.bus.producer import Publisher
from otc.bus.topics import LASTLOOK_REQUESTS, RFQ_QUOTES, RFQ_REQUESTS
from otc.clock import Clock, SystemClock
from otc.http_server import http_server
from otc.quote_book import QuoteBook
from otc.rate_limit import TokenBuckets
from otc.redis_client import connect as connect_redis
from otc.settings import Settings
from quoting_service.adapters.market_data import MarketData
from quoting_service.adapters.protection import ProtectionWindow
from quoting_service.domain.guards import Guards
from quoting_service.domain.protection import ProtectionLimits
from quoting_service.entrypoints import bot_protocol as wire
from quoting_service.entrypoints.bots import Bots
from quoting_service.entrypoints.gateway import MmGateway
from quoting_service.entrypoints.mm_gateway import Verify, create_app
from quoting_service.entrypoints.quoter import Quoter
from quoting_service.service_layer.desk import MakerDesk, Market, Protection
from quoting_service.service_layer.halts import Controls
from quoting_service.service_layer.handlers import Deps, dispatch
from quoting_service.strategy import Strategy, StrategyConfig

LAST_LOOK_TOLERANCE_BPS = Decimal(50)


class StrategyLoadError(ValueError):
    """The strategy path does not name an importable `Strategy` subclass."""


def load_strategy(path: str) -> type[Strategy]:
    """Imports `package.module:Class` and checks that it is a concrete `Strategy`."""
    module_name, sep, class_name = path.partition(":")
    if not sep or not module_name or not class_name:
        raise StrategyLoadError(f"strategy {path!r} is not of the form package.module:Class")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise StrategyLoadError(f"cannot import strategy module {module_name!r}: {exc}") from exc
    found = getattr(module, class_name, None)
    if found is None:
        raise StrategyLoadError(f"module {module_name!r} has no {class_name!r}")
    if not isinstance(found, type) or not issubclass(found, Strategy):
        raise StrategyLoadError(f"{path!r} is not a subclass of {Strategy.__qualname__}")
    if getattr(found, "__abstractmethods__", None):
        missing = ", ".join(sorted(found.__abstractmethods__))
        raise StrategyLoadError(f"{path!r} does not implement {missing}")
    return found


def guards(settings: Settings) -> Guards:
    return Guards(band_bps=settings.price_band_bps, max_block_notional=settings.max_block_notional)


def protection_limits(settings: Settings) -> ProtectionLimits:
    return ProtectionLimits(
        window=timedelta(milliseconds=settings.mmp_window_ms),
        max_accepts=settings.mmp_max_accepts,
        max_notional=settings.mmp_max_notional,
    )


def desks(
    settings: Settings, *, redis: Redis, publisher: Publisher, market: Market, clock: Clock
) -> Callable[[str], MakerDesk]:
    """Makes the desk of a maker; all of them share the connections given."""
    book, window = QuoteBook(redis), ProtectionWindow(redis)
    protection = Protection(window, protection_limits(settings))

    def desk(maker: str) -> MakerDesk:
        return MakerDesk(
            maker=maker,
            book=book,
            publisher=publisher,
            market=market,
            guards=guards(settings),
            protection=protection,
            quote_ttl=timedelta(milliseconds=settings.quote_ttl_ms),
            clock=clock,
        )

    return desk


def build(
    settings: Settings,
    *,
    maker: str,
    strategy_path: str,
    group_id: str | None = None,
    clock: Clock | None = None,
) -> Quoter:
    strategy = load_strategy(strategy_path)(
        StrategyConfig(
            quote_ttl=timedelta(milliseconds=settings.quote_ttl_ms),
            last_look_tolerance_bps=LAST_LOOK_TOLERANCE_BPS,
        )
    )
    name = f"quoter.{maker}"
    bootstrap = settings.require("kafka_bootstrap")
    clock = clock or SystemClock()
    redis = connect_redis(settings.require("redis_url"))
    publisher = Publisher(bootstrap, name, clock)
    market = MarketData(bootstrap)
    desk = desks(settings, redis=redis, publisher=publisher, market=market, clock=clock)(maker)
    deps = Deps(maker=maker, strategy=strategy, market=market, desk=desk, clock=clock)
    consumer = Consumer(
        service=name,
        bootstrap=bootstrap,
        topics=(RFQ_REQUESTS, LASTLOOK_REQUESTS),
        handler=partial(dispatch, deps),
        publisher=publisher,
        group_id=group_id or name,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
    )
    return Quoter(
        name=name,
        deps=deps,
        consumer=consumer,
        market=market,
        publisher=publisher,
        redis=redis,
    )


def build_gateway(
    settings: Settings,
    *,
    verify: Verify | None = None,
    clock: Clock | None = None,
) -> MmGateway:
    """The market-maker gateway; tokens are checked as the rest of the platform
    checks them unless `verify` is given."""
    name = "mm-gateway"
    bootstrap = settings.require("kafka_bootstrap")
    clock = clock or SystemClock()
    redis = connect_redis(settings.require("redis_url"))
    publisher = Publisher(bootstrap, name, clock)
    market = MarketData(bootstrap)
    desk_for = desks(settings, redis=redis, publisher=publisher, market=market, clock=clock)
    limit = wire.MessageLimit(
        TokenBuckets(rate_per_s=settings.mm_messages_per_s, burst=settings.mm_message_burst),
        settings.mm_refusals_before_close,
    )
    bots = Bots(
        desk_for,
        clock,
        timedelta(milliseconds=settings.quote_ttl_ms),
        limit,
        max_sessions=settings.ws_max_sessions,
    )
    feed = Consumer(
        service=name,
        bootstrap=bootstrap,
        topics=(RFQ_REQUESTS, LASTLOOK_REQUESTS, RFQ_QUOTES),
        handler=bots.on_message,
        publisher=publisher,
        group_id=None,  # every replica reads every partition: any may hold the maker's bot
        from_end=True,
    )
    controls = Controls(QuoteBook(redis), ProtectionWindow(redis), publisher, clock)
    gateway: MmGateway
    app = create_app(
        bots=bots,
        controls=controls,
        verify=verify or TokenVerifier.from_settings(settings).verify,
        heartbeat_timeout_s=settings.mm_heartbeat_timeout_ms / 1000,
        ready=lambda: gateway.ready(),
    )
    server = http_server(app, settings.http_host, settings.mm_http_port)
    gateway = MmGateway(server=server, feed=feed, market=market, publisher=publisher, redis=redis)
    return gateway
