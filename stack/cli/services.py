"""`otc <service>`: run one of the platform's services in this process.

Each command imports its service only when run, so starting one service loads
none of the others.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

from otc.logging import configure
from otc.service import EXIT_CUT_OFF, Service, ShutdownCutOff, serve
from otc.settings import Settings, get_settings


def run_service(name: str, factory: Callable[[Settings], Service]) -> None:
    settings = get_settings()
    configure(name, fmt=settings.log_format, level=settings.log_level)

    async def main() -> None:
        # Built inside the loop: Kafka clients bind to the running loop when created.
        await serve(factory(settings), settings)

    try:
        asyncio.run(main())
    except ShutdownCutOff:  # logged by serve; the exit code tells the orchestrator
        sys.exit(EXIT_CUT_OFF)


def rfq_service() -> None:
    """Run the trader-facing edge (REST + WebSocket)."""
    from rfq_service.bootstrap import build

    run_service("rfq-service", build)


def order_core() -> None:
    """Run the order state machine, its outbox relay and deadline sweeper."""
    from order_core.bootstrap import build

    run_service("order-core", build)


def risk_limits() -> None:
    """Run the credit service (gRPC)."""
    from risk_limits.bootstrap import build

    run_service("risk-limits", build)


def settlement() -> None:
    """Run settlement: books confirmed trades in the double-entry ledger."""
    from settlement.bootstrap import build

    run_service("settlement", build)


def price_feed() -> None:
    """Run the simulated reference-price feed (a random walk per instrument)."""
    from stack.price_feed import build

    run_service("price-feed", build)


def mm_gateway() -> None:
    """Run the market-maker gateway: the bots' WebSocket and the kill switch API."""
    from quoting_service.bootstrap import build_gateway

    run_service("mm-gateway", build_gateway)
