"""Wires one maker's quoter from settings and the import path of its strategy.

`build` must run inside the event loop that will run the service, because the
Kafka clients bind to the running loop when they are created.
"""

from __future__ import annotations

import importlib
from datetime import timedelta
from decimal import Decimal
from functools import partial

from otc.bus.consumer import Consumer
from otc.bus.producer import Publisher
from otc.bus.topics import LASTLOOK_REQUESTS, RFQ_REQUESTS
from otc.clock import Clock, SystemClock
from otc.redis_client import connect as connect_redis
from otc.service import Service
from otc.settings import Settings
from quoting_service.adapters.market_data import MarketData
from quoting_service.adapters.quotes import MakerQuotes
from quoting_service.entrypoints.quoter import Quoter
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


def build(
    settings: Settings,
    *,
    maker: str,
    strategy_path: str,
    group_id: str | None = None,
    clock: Clock | None = None,
) -> Service:
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
    deps = Deps(
        maker=maker,
        strategy=strategy,
        market=market,
        quotes=MakerQuotes(redis),
        publisher=publisher,
        clock=clock,
    )
    consumer = Consumer(
        service=name,
        bootstrap=bootstrap,
        topics=(RFQ_REQUESTS, LASTLOOK_REQUESTS),
        handler=partial(dispatch, deps),
        publisher=publisher,
        group_id=group_id or name,
    )
    return Quoter(
        name=name,
        deps=deps,
        consumer=consumer,
        market=market,
        publisher=publisher,
        redis=redis,
    )
