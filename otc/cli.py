"""The `otc` command: run the platform, one of its services, the demo or the bench."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console

from order_core.entrypoints.audit_cli import audit_app
from otc.auth import AuthConfigError, Role, TokenMinter
from otc.clock import SystemClock
from otc.logging import configure
from otc.service import EXIT_CUT_OFF, Service, ShutdownCutOff, serve
from otc.settings import Settings, get_settings
from quoting_service.entrypoints.cli import quoter_app
from risk_limits.entrypoints.cli import risk_app
from settlement.entrypoints.cli import eod_command, ledger_app

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="OTC request-for-quote platform."
)
app.add_typer(audit_app, name="audit", help="Verify and export the tamper-evident audit trail.")
app.add_typer(risk_app, name="risk", help="Credit lines, exposure and reference rates.")
app.add_typer(quoter_app, name="quoter")
app.add_typer(ledger_app, name="ledger")
app.command("eod")(eod_command)
console = Console()


def _run_service(name: str, factory: Callable[[Settings], Service]) -> None:
    settings = get_settings()
    configure(name, fmt=settings.log_format, level=settings.log_level)

    async def main() -> None:
        # Built inside the loop: Kafka clients bind to the running loop when created.
        await serve(factory(settings), settings)

    try:
        asyncio.run(main())
    except ShutdownCutOff:  # logged by serve; the exit code tells the orchestrator
        sys.exit(EXIT_CUT_OFF)


@app.command("rfq-service")
def rfq_service() -> None:
    """Run the trader-facing edge (REST + WebSocket)."""
    from rfq_service.bootstrap import build

    _run_service("rfq-service", build)


@app.command("order-core")
def order_core() -> None:
    """Run the order state machine, its outbox relay and deadline sweeper."""
    from order_core.bootstrap import build

    _run_service("order-core", build)


@app.command("risk-limits")
def risk_limits() -> None:
    """Run the credit service (gRPC)."""
    from risk_limits.bootstrap import build

    _run_service("risk-limits", build)


@app.command("settlement")
def settlement() -> None:
    """Run settlement: books confirmed trades in the double-entry ledger."""
    from settlement.bootstrap import build

    _run_service("settlement", build)


@app.command("price-feed")
def price_feed() -> None:
    """Run the simulated reference-price feed (a random walk per instrument)."""
    from otc.price_feed import build

    _run_service("price-feed", build)


@app.command("mm-gateway")
def mm_gateway() -> None:
    """Run the market-maker gateway: the bots' WebSocket and the kill switch API."""
    from quoting_service.bootstrap import build_gateway

    _run_service("mm-gateway", build_gateway)


@app.command()
def migrate() -> None:
    """Apply the database migrations to OTC_DATABASE_URL."""
    from otc.migrate import upgrade

    asyncio.run(upgrade(get_settings().require("database_url")))
    console.print("migrations applied")


@app.command()
def check(
    grace_s: Annotated[
        float, typer.Option("--grace-s", min=0, help="how long two services may disagree")
    ] = 30.0,
    as_json: Annotated[bool, typer.Option("--json", help="print the breaks as JSON")] = False,
) -> None:
    """Prove the services' books agree (orders, credit, reservations, trades, ledger,
    audit chain) in one snapshot; exit 1 naming every break, 2 if it cannot run."""
    from sqlalchemy.exc import SQLAlchemyError

    from otc.invariants import check_database

    # Fresh settings, not the cached ones: the URL may be the one `otc up` wrote.
    settings = Settings()
    url = settings.database_url or _recorded(settings, "database_url")
    if url is None:
        typer.echo("OTC_DATABASE_URL is not set and no local `otc up` is running", err=True)
        raise typer.Exit(2)
    try:
        breaks = asyncio.run(check_database(url, grace=timedelta(seconds=grace_s)))
    except (OSError, SQLAlchemyError) as exc:
        typer.echo(f"invariants not checked: {exc}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        found = [asdict(b) for b in breaks]
        typer.echo(json.dumps({"ok": not breaks, "breaks": found}, indent=2))
    elif breaks:
        for b in breaks:
            typer.echo(f"{b.invariant}: {b.detail}")
        typer.echo(f"invariant breaks: {len(breaks)}")
    else:
        typer.echo("invariants hold")
    raise typer.Exit(1 if breaks else 0)


@app.command()
def token(
    party: Annotated[str, typer.Option(help="party id (the token's sub)")] = "TRADER-A",
    role: Annotated[
        Role, typer.Option(help="trader, market_maker, auditor or admin")
    ] = Role.TRADER,
    ttl_hours: Annotated[float, typer.Option(help="validity in hours")] = 12.0,
) -> None:
    """Mint a development token: HS256 with OTC_JWT_SECRET, or RS256 with
    OTC_JWT_PRIVATE_KEY_FILE."""
    try:
        typer.echo(_mint(party, role, timedelta(hours=ttl_hours)))
    except AuthConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None


def _mint(party: str, role: Role, ttl: timedelta | None = None) -> str:
    settings = get_settings()
    return TokenMinter.from_settings(settings).mint(
        party,
        role,
        now=SystemClock().now(),
        ttl=ttl or timedelta(seconds=settings.jwt_ttl_s),
    )


@app.command()
def up(
    fail_fast: Annotated[
        bool,
        typer.Option("--fail-fast", help="stop everything when a service exits, not restart it"),
    ] = False,
) -> None:
    """Start everything: embedded servers (unless OTC_* URLs are set), every service,
    three demo market makers and the price feed, restarting a service that exits
    (with a growing delay). Ctrl-C stops it all."""
    settings = get_settings()
    configure("otc-up", fmt=settings.log_format, level="WARNING")
    code = asyncio.run(_up(settings, fail_fast=fail_fast))
    raise typer.Exit(code)


async def _up(settings: Settings, *, fail_fast: bool = False) -> int:
    from otc.infra.platform import Platform
    from otc.infra.processes import port_in_use
    from otc.infra.supervisor import SERVICES_FILE, Supervisor, first_exit, write_services

    for port, variable in (
        (settings.http_port, "OTC_HTTP_PORT"),
        (settings.risk_grpc_port, "OTC_RISK_GRPC_PORT"),
        (settings.mm_http_port, "OTC_MM_HTTP_PORT"),
    ):
        if port_in_use(port):
            console.print(
                f"[red]port {port} is in use[/red]: is the platform already running? "
                f"Set {variable} to use another port."
            )
            return 1
    state_dir = settings.state_dir.resolve()
    platform = Platform(
        settings,
        state_dir=state_dir,
        log_dir=state_dir / "logs",
        risk_port=settings.risk_grpc_port,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    console.print("starting the OTC RFQ platform...")
    try:
        endpoints = await platform.start()
        recorded = {**asdict(endpoints), "risk_target": f"127.0.0.1:{platform.risk_port}"}
        (state_dir / ENDPOINTS_FILE).write_text(json.dumps(recorded, indent=2))
        _print_banner(settings, platform, endpoints)
        services_file = state_dir / SERVICES_FILE
        if fail_fast:
            write_services(services_file, platform.children)
            dead = await first_exit(platform, stop)
            if dead:
                console.print(
                    f"[red]{', '.join(dead)} stopped unexpectedly[/red]; see {state_dir / 'logs'}"
                )
                return 1
        else:
            say = partial(console.print, markup=False, highlight=False)
            supervisor = Supervisor(platform, say=say, services_file=services_file)
            await supervisor.run(stop)
            console.print(supervisor.summary())
        console.print("stopping...")
        return 0
    finally:
        platform.stop()
        (state_dir / ENDPOINTS_FILE).unlink(missing_ok=True)
        (state_dir / SERVICES_FILE).unlink(missing_ok=True)
        console.print("stopped: no service or server left running")


def _print_banner(settings: Settings, platform: object, endpoints: object) -> None:
    from otc.infra.platform import Endpoints, Platform

    assert isinstance(platform, Platform)
    assert isinstance(endpoints, Endpoints)
    started = ", ".join(platform.started_servers) or "none (using OTC_* URLs)"
    url = f"http://127.0.0.1:{platform.http_port}"
    console.print(
        f"""
[bold green]OTC RFQ platform is up[/bold green]
  trader API      {url}   (OpenAPI: {url}/docs, WebSocket: ws://127.0.0.1:{platform.http_port}/v1/ws)
  embedded        {started}
  PostgreSQL      {endpoints.database_url}
  Redis           {endpoints.redis_url}
  Kafka           {endpoints.kafka_bootstrap}
  risk gRPC       127.0.0.1:{platform.risk_port}   (try: .venv/bin/otc risk exposure TRADER-A)
  maker bots      ws://127.0.0.1:{platform.mm_http_port}/v1/mm/ws   (kill switch: otc quoter kill)
  services        {", ".join(platform.children)}
  logs            {platform.state_dir / "logs"}

  token (TRADER-A): {_mint("TRADER-A", Role.TRADER)}

  try it:  .venv/bin/otc demo        stop: Ctrl-C
""",
        soft_wrap=True,
    )


@dataclass(frozen=True)
class _Target:
    api: str
    # known when we started it, or when `otc up` wrote down where it runs them
    database_url: str | None
    risk_target: str | None
    redis_url: str | None = None
    kafka_bootstrap: str | None = None


@asynccontextmanager
async def _platform_at(url: str | None) -> AsyncIterator[_Target]:
    """The running platform at `url`, or one started for the occasion."""
    settings = get_settings()
    target = url or f"http://127.0.0.1:{settings.http_port}"
    try:
        async with httpx.AsyncClient(timeout=1.0) as client:
            if (await client.get(f"{target}/readyz")).status_code == 200:
                yield _Target(
                    target,
                    settings.database_url or _recorded(settings, "database_url"),
                    _recorded(settings, "risk_target"),
                    settings.redis_url or _recorded(settings, "redis_url"),
                    settings.kafka_bootstrap or _recorded(settings, "kafka_bootstrap"),
                )
                return
    except httpx.TransportError:
        if url is not None:
            raise
    from otc.infra.platform import Platform
    from otc.infra.processes import free_port

    console.print(f"no platform at {target}; starting one for this run...")
    with tempfile.TemporaryDirectory(prefix="otc-") as tmp:
        platform = Platform(
            settings, state_dir=Path(tmp), http_port=free_port(), log_dir=Path(tmp) / "logs"
        )
        try:
            endpoints = await platform.start()
            yield _Target(
                f"http://127.0.0.1:{platform.http_port}",
                endpoints.database_url,
                f"127.0.0.1:{platform.risk_port}",
                endpoints.redis_url,
                endpoints.kafka_bootstrap,
            )
        finally:
            platform.stop()


ENDPOINTS_FILE = "endpoints.json"


def _recorded(settings: Settings, key: str) -> str | None:
    """What `otc up` wrote down about the platform it runs, if it did."""
    path = settings.state_dir / ENDPOINTS_FILE
    if not path.exists():
        return None
    recorded: dict[str, str] = json.loads(path.read_text())
    return recorded.get(key)


@app.command()
def demo(
    url: Annotated[str | None, typer.Option(help="trader API of a running platform")] = None,
    instrument: str = "BTC-USD",
    side: str = "buy",
    quantity: str = "2.5",
) -> None:
    """Run one RFQ end to end as TRADER-A and print the timeline."""
    from otc.demo import DemoFailed, run_demo

    async def main() -> None:
        async with _platform_at(url) as target:
            await run_demo(
                target.api,
                _mint("TRADER-A", Role.TRADER),
                instrument=instrument,
                side=side,
                quantity=quantity,
            )

    try:
        asyncio.run(main())
    except DemoFailed as exc:
        console.print(f"[red]demo failed[/red]: {exc}")
        raise typer.Exit(1) from None


@app.command()
def bench(
    rfqs: Annotated[int, typer.Option("--rfqs", "-n", help="how many RFQs")] = 200,
    concurrency: Annotated[int, typer.Option(help="RFQs in flight at once")] = 8,
    quantity: str = "0.1",
    url: Annotated[str | None, typer.Option(help="trader API of a running platform")] = None,
    risk_pairs: Annotated[
        int, typer.Option(help="Freeze + Commit pairs to time on the credit service (0: skip)")
    ] = 300,
    quotes: Annotated[
        int, typer.Option(help="RFQs at once to time one quoting process with (0: skip)")
    ] = 500,
    settlements: Annotated[
        int, typer.Option(help="deals to time CONFIRMED -> SETTLED on (0: skip)")
    ] = 100,
    traders: Annotated[
        int, typer.Option(help="WebSocket traders connected for the fan-out figure (0: skip)")
    ] = 200,
) -> None:
    """Measure RFQ -> first quote, accept -> CONFIRMED, sustained RFQs/s, the credit
    service's Freeze + Commit beside raw gRPC and PostgreSQL round trips, one
    quoting process's quotes/s beside raw Kafka and Redis round trips, WebSocket
    fan-out to many connected traders, and settlement throughput."""
    from otc.bench import run_bench

    async def main() -> None:
        async with _platform_at(url) as target:
            tokens = [_mint(p, Role.TRADER) for p in ("TRADER-A", "TRADER-B")]
            await run_bench(
                target.api,
                tokens,
                rfqs=rfqs,
                concurrency=concurrency,
                quantity=quantity,
                console=console,
                database_url=target.database_url,
            )
            if traders and target.kafka_bootstrap:
                from rfq_service.bench import run_fanout_bench

                for line in await run_fanout_bench(
                    target.api,
                    target.kafka_bootstrap,
                    lambda party: _mint(party, Role.TRADER),
                    traders=traders,
                ):
                    console.print(line)
            elif traders:
                console.print("fan-out not timed: where Kafka runs is unknown")
            if risk_pairs and target.database_url and target.risk_target:
                from risk_limits.bench import run_risk_bench

                await run_risk_bench(
                    target.risk_target,
                    target.database_url,
                    pairs=risk_pairs,
                    concurrency=concurrency,
                )
            elif risk_pairs:
                console.print("credit service not timed: where it and the database run is unknown")
            if quotes and target.kafka_bootstrap and target.redis_url:
                from quoting_service.bench import run_quoting_bench

                for line in await run_quoting_bench(
                    target.kafka_bootstrap, target.redis_url, rfqs=quotes
                ):
                    console.print(line)
            elif quotes:
                console.print("quoting not timed: where Kafka and Redis run is unknown")
            if settlements:
                from settlement.bench import run_settlement_bench

                for line in await run_settlement_bench(
                    target.api,
                    tokens,
                    deals=settlements,
                    concurrency=concurrency,
                    database_url=target.database_url,
                ):
                    console.print(line)

    asyncio.run(main())


@app.command()
def chaos(
    kills: Annotated[int, typer.Option(min=0, help="how many services to kill -9")] = 20,
    interval_s: Annotated[float, typer.Option(min=0.1, help="seconds between two kills")] = 3.0,
    seed: Annotated[int | None, typer.Option(help="seed of the choices (default: random)")] = None,
    rfqs_per_s: Annotated[float, typer.Option(min=0.1, help="new RFQs a second")] = 2.0,
) -> None:
    """Kill -9 random services of the running `otc up` while RFQs flow, then prove
    every RFQ ended and the books agree; exit 1 if not, 2 if no `otc up` runs here."""
    from otc.chaos import drill

    # Fresh settings, not the cached ones: the URL may be the one `otc up` wrote.
    settings = Settings()
    code = asyncio.run(
        drill(
            settings,
            kills=kills,
            interval_s=interval_s,
            seed=seed,
            rfqs_per_s=rfqs_per_s,
            database_url=settings.database_url or _recorded(settings, "database_url"),
            mint=lambda party: _mint(party, Role.TRADER),
            say=partial(console.print, markup=False, highlight=False),
        )
    )
    raise typer.Exit(code)


if __name__ == "__main__":
    sys.exit(app())
