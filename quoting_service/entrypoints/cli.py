"""`otc quoter`: run one maker's quoting service, or stop a maker at once.

    otc quoter --maker MM-1 --strategy package.module:Class
    otc quoter kill --maker MM-1      withdraw every live quote of MM-1 and halt it
    otc quoter reset --maker MM-1     let MM-1 quote again
    otc quoter status --maker MM-1

The kill switch talks to Redis and Kafka directly (OTC_REDIS_URL and
OTC_KAFKA_BOOTSTRAP, or the servers `otc up` runs), so it works even when no
quoting process or gateway is up.
"""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from otc import endpoints
from otc.bus.producer import Publisher
from otc.clock import SystemClock
from otc.logging import configure
from otc.quote_book import QuoteBook
from otc.redis_client import connect as connect_redis
from otc.service import EXIT_CUT_OFF, ShutdownCutOff, serve
from otc.settings import get_settings
from quoting_service.adapters.protection import ProtectionWindow
from quoting_service.service_layer.halts import Controls

T = TypeVar("T")

quoter_app = typer.Typer(
    add_completion=False,
    help="Run one market maker's quoting service, or kill / reset a maker.",
)
console = Console()

Maker = Annotated[str, typer.Option(help="market maker party id, e.g. MM-1")]


@quoter_app.callback(invoke_without_command=True)
def quoter(
    ctx: typer.Context,
    maker: Annotated[str | None, typer.Option(help="market maker party id, e.g. MM-1")] = None,
    strategy: Annotated[
        str | None, typer.Option(help="pricing strategy as package.module:Class")
    ] = None,
) -> None:
    """Run one market maker's quoting service (or one of the commands below)."""
    if ctx.invoked_subcommand is not None:
        return
    if not maker or not strategy:
        raise typer.BadParameter("--maker and --strategy are both needed to run a quoter")
    from quoting_service.bootstrap import build

    settings = get_settings()
    configure(f"quoter-{maker}", fmt=settings.log_format, level=settings.log_level)

    async def main() -> None:
        # Built inside the loop: Kafka clients bind to the running loop when created.
        await serve(build(settings, maker=maker, strategy_path=strategy), settings)

    try:
        asyncio.run(main())
    except ShutdownCutOff:
        raise typer.Exit(EXIT_CUT_OFF) from None


@quoter_app.command()
def kill(maker: Maker) -> None:
    """Withdraw every live quote of the maker now and halt it until reset."""
    withdrawn = _with_controls(lambda c: c.kill(maker, by=f"cli:{getpass.getuser()}"))
    console.print(f"{maker} halted: {len(withdrawn)} live quote(s) withdrawn")


@quoter_app.command()
def reset(maker: Maker) -> None:
    """Let a halted maker quote again, with a fresh protection window."""
    was_halted = _with_controls(lambda c: c.reset(maker))
    console.print(f"{maker} may quote again" if was_halted else f"{maker} was not halted")


@quoter_app.command()
def status(maker: Maker) -> None:
    """Whether the maker is halted, and how many quotes it has live."""
    halted, live = _with_controls(lambda c: c.status(maker))
    state = f"halted ({halted})" if halted else "quoting"
    console.print(f"{maker}: {state}, {live} live quote(s)")


def _with_controls(action: Callable[[Controls], Awaitable[T]]) -> T:
    settings = get_settings()
    redis_url = endpoints.redis_url(settings)
    bootstrap = endpoints.kafka_bootstrap(settings)
    if not redis_url or not bootstrap:
        console.print("[red]where Redis and Kafka run is unknown[/red]: set OTC_REDIS_URL and ")
        console.print("OTC_KAFKA_BOOTSTRAP, or run this beside `otc up`")
        raise typer.Exit(1)

    async def main() -> T:
        clock = SystemClock()
        redis = connect_redis(redis_url)
        publisher = Publisher(bootstrap, "otc-quoter-cli", clock)
        await publisher.start()
        try:
            return await action(
                Controls(QuoteBook(redis), ProtectionWindow(redis), publisher, clock)
            )
        finally:
            await publisher.stop()
            await redis.aclose()

    return asyncio.run(main())
