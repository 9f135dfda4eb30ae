"""`otc demo`, `otc bench` and `otc chaos`: drive a platform as traders would.

Demo and bench run against the platform at `--url` or the local `otc up`, or
else start one of their own for the run; chaos needs the local `otc up`.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Annotated

import httpx
import typer

from otc import endpoints
from otc.auth import Role
from otc.settings import Settings, get_settings
from stack.bench.target import Target
from stack.cli.shared import console, mint


@asynccontextmanager
async def platform_at(url: str | None, *, durable: bool = False) -> AsyncIterator[Target]:
    """The running platform at `url`, or one started for the occasion (its
    PostgreSQL durable when `durable`)."""
    settings = get_settings()
    target = url or f"http://127.0.0.1:{settings.http_port}"
    try:
        async with httpx.AsyncClient(timeout=1.0) as client:
            running = (await client.get(f"{target}/readyz")).status_code == 200
    except httpx.TransportError:
        if url is not None:
            raise
        running = False
    if running:
        # outside the probe's `try`: an error of the caller's must not start a platform
        yield _running(settings, target)
        return
    from stack.infra.platform import Platform
    from stack.infra.processes import free_port

    mode = "durable" if durable else "development"
    console.print(f"no platform at {target}; starting one for this run ({mode} database)...")
    with tempfile.TemporaryDirectory(prefix="otc-") as tmp:
        platform = Platform(
            settings.model_copy(update={"postgres_durable": durable}),
            state_dir=Path(tmp),
            http_port=free_port(),
            log_dir=Path(tmp) / "logs",
        )
        try:
            started = await platform.start()
            yield Target(
                f"http://127.0.0.1:{platform.http_port}",
                started.database_url,
                f"127.0.0.1:{platform.risk_port}",
                started.redis_url,
                started.kafka_bootstrap,
                gateway_url=f"http://127.0.0.1:{platform.mm_http_port}",
                root_pid=os.getpid(),
                names={child.pid: name for name, child in platform.children.items() if child.pid},
            )
        finally:
            platform.stop()


def _running(settings: Settings, api: str) -> Target:
    """What `otc up` wrote down about the platform it runs here, if it runs here."""
    from stack.bench.processes import up_root
    from stack.infra.supervisor import SERVICES_FILE

    services_file = settings.state_dir / SERVICES_FILE
    services = json.loads(services_file.read_text()) if services_file.exists() else {}
    root = up_root(services)
    return Target(
        api,
        endpoints.database_url(settings),
        endpoints.recorded(settings, "risk_target"),
        endpoints.redis_url(settings),
        endpoints.kafka_bootstrap(settings),
        gateway_url=endpoints.recorded(settings, "gateway_url"),
        root_pid=root,
        names={pid: name for name, pid in services.items()},
        include_root=root is not None,
    )


def demo(
    url: Annotated[str | None, typer.Option(help="trader API of a running platform")] = None,
    instrument: str = "BTC-USD",
    side: str = "buy",
    quantity: str = "2.5",
) -> None:
    """Run one RFQ end to end as TRADER-A and print the timeline."""
    from stack.demo import DemoFailed, run_demo

    async def main() -> None:
        async with platform_at(url) as target:
            await run_demo(
                target.api,
                mint("TRADER-A", Role.TRADER),
                instrument=instrument,
                side=side,
                quantity=quantity,
            )

    try:
        asyncio.run(main())
    except DemoFailed as exc:
        console.print(f"[red]demo failed[/red]: {exc}")
        raise typer.Exit(1) from None


def bench(
    sequential: Annotated[
        int, typer.Option(help="RFQs one at a time, nothing else in flight (0: skip)")
    ] = 100,
    rfqs: Annotated[
        int, typer.Option("--rfqs", "-n", help="RFQs of the closed loop (0: skip)")
    ] = 200,
    concurrency: Annotated[int, typer.Option(help="RFQs in flight at once in the closed loop")] = 8,
    rate: Annotated[
        str, typer.Option(help="open-loop arrival rates, RFQs a second, comma-separated ('': skip)")
    ] = "25,50,100",
    rate_seconds: Annotated[
        float, typer.Option(min=1, help="how long each open-loop rate runs")
    ] = 60,
    idle_seconds: Annotated[
        float, typer.Option(min=0, help="idle window timed for CPU before any traffic (0: skip)")
    ] = 10,
    quantity: str = "0.1",
    url: Annotated[str | None, typer.Option(help="trader API of a running platform")] = None,
    durable: Annotated[
        bool,
        typer.Option(
            help="when the bench starts a platform of its own, run its PostgreSQL durable"
        ),
    ] = True,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="also write the figures to this file, as JSON")
    ] = None,
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
    audit_writers: Annotated[
        int, typer.Option(help="concurrent writers timing audited commits (0: skip)")
    ] = 16,
) -> None:
    """Measure the platform as traders use it: one RFQ at a time, a closed loop, and
    open-loop arrival rates, with the latency budget of each hop beside its raw floor
    (PostgreSQL, Redis, gRPC, Kafka), the makers' last-look hold, CPU and RSS of every
    process at idle and under each load; then the credit service, one quoting
    process, WebSocket fan-out, settlement and the audit trail on their own."""
    from stack.bench.run import Bench, Options

    try:
        rates = tuple(float(r) for r in rate.split(",") if r.strip())
    except ValueError:
        raise typer.BadParameter(f"not a list of rates: {rate!r}", param_hint="--rate") from None
    if any(r <= 0 for r in rates):
        raise typer.BadParameter("rates must be above zero", param_hint="--rate")
    options = Options(
        sequential=sequential,
        rfqs=rfqs,
        concurrency=concurrency,
        rates=rates,
        rate_seconds=rate_seconds,
        idle_seconds=idle_seconds,
        quantity=quantity,
        fetch_wait_ms=get_settings().kafka_fetch_max_wait_ms,
        risk_pairs=risk_pairs,
        quotes=quotes,
        settlements=settlements,
        traders=traders,
        audit_writers=audit_writers,
    )

    async def main() -> None:
        async with platform_at(url, durable=durable) as target:
            report = await Bench(
                target,
                options,
                trader_token=lambda party: mint(party, Role.TRADER),
                maker_token=lambda party: mint(party, Role.MARKET_MAKER),
                console=console,
            ).run()
        report.print(console)
        if json_path is not None:
            report.write(json_path)
            console.print(f"figures written to {json_path}")

    asyncio.run(main())


def chaos(
    kills: Annotated[int, typer.Option(min=0, help="how many services to kill -9")] = 20,
    interval_s: Annotated[float, typer.Option(min=0.1, help="seconds between two kills")] = 3.0,
    seed: Annotated[int | None, typer.Option(help="seed of the choices (default: random)")] = None,
    rfqs_per_s: Annotated[float, typer.Option(min=0.1, help="new RFQs a second")] = 2.0,
) -> None:
    """Kill -9 random services of the running `otc up` while RFQs flow, then prove
    every RFQ ended and the books agree; exit 1 if not, 2 if no `otc up` runs here."""
    from stack.chaos import drill

    # Fresh settings, not the cached ones: the URL may be the one `otc up` wrote.
    settings = Settings()
    code = asyncio.run(
        drill(
            settings,
            kills=kills,
            interval_s=interval_s,
            seed=seed,
            rfqs_per_s=rfqs_per_s,
            database_url=endpoints.database_url(settings),
            mint=lambda party: mint(party, Role.TRADER),
            say=partial(console.print, markup=False, highlight=False),
        )
    )
    raise typer.Exit(code)
