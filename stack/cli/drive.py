"""`otc demo`, `otc bench` and `otc chaos`: drive a platform as traders would.

Demo and bench run against the platform at `--url` or the local `otc up`, or
else start one of their own for the run; chaos needs the local `otc up`.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Annotated

import httpx
import typer

from otc import endpoints
from otc.auth import Role
from otc.settings import Settings, get_settings
from stack.cli.shared import console, mint


@dataclass(frozen=True)
class Target:
    api: str
    # known when we started it, or when `otc up` wrote down where it runs them
    database_url: str | None
    risk_target: str | None
    redis_url: str | None = None
    kafka_bootstrap: str | None = None


@asynccontextmanager
async def platform_at(url: str | None) -> AsyncIterator[Target]:
    """The running platform at `url`, or one started for the occasion."""
    settings = get_settings()
    target = url or f"http://127.0.0.1:{settings.http_port}"
    try:
        async with httpx.AsyncClient(timeout=1.0) as client:
            if (await client.get(f"{target}/readyz")).status_code == 200:
                yield Target(
                    target,
                    endpoints.database_url(settings),
                    endpoints.recorded(settings, "risk_target"),
                    endpoints.redis_url(settings),
                    endpoints.kafka_bootstrap(settings),
                )
                return
    except httpx.TransportError:
        if url is not None:
            raise
    from stack.infra.platform import Platform
    from stack.infra.processes import free_port

    console.print(f"no platform at {target}; starting one for this run...")
    with tempfile.TemporaryDirectory(prefix="otc-") as tmp:
        platform = Platform(
            settings, state_dir=Path(tmp), http_port=free_port(), log_dir=Path(tmp) / "logs"
        )
        try:
            started = await platform.start()
            yield Target(
                f"http://127.0.0.1:{platform.http_port}",
                started.database_url,
                f"127.0.0.1:{platform.risk_port}",
                started.redis_url,
                started.kafka_bootstrap,
            )
        finally:
            platform.stop()


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
    audit_writers: Annotated[
        int, typer.Option(help="concurrent writers timing audited commits (0: skip)")
    ] = 16,
) -> None:
    """Measure RFQ -> first quote, accept -> CONFIRMED, sustained RFQs/s, the credit
    service's Freeze + Commit beside raw gRPC and PostgreSQL round trips, one
    quoting process's quotes/s beside raw Kafka and Redis round trips, WebSocket
    fan-out to many connected traders, settlement throughput, and audited commits
    per second beside the single-lock figure, with the sequencer's delay."""
    from stack.bench.platform import run_bench

    async def main() -> None:
        async with platform_at(url) as target:
            tokens = [mint(p, Role.TRADER) for p in ("TRADER-A", "TRADER-B")]
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
                from stack.bench.fanout import run_fanout_bench

                for line in await run_fanout_bench(
                    target.api,
                    target.kafka_bootstrap,
                    lambda party: mint(party, Role.TRADER),
                    traders=traders,
                ):
                    console.print(line)
            elif traders:
                console.print("fan-out not timed: where Kafka runs is unknown")
            if risk_pairs and target.database_url and target.risk_target:
                from stack.bench.credit import run_risk_bench

                await run_risk_bench(
                    target.risk_target,
                    target.database_url,
                    pairs=risk_pairs,
                    concurrency=concurrency,
                )
            elif risk_pairs:
                console.print("credit service not timed: where it and the database run is unknown")
            if quotes and target.kafka_bootstrap and target.redis_url:
                from stack.bench.quoting import run_quoting_bench

                for line in await run_quoting_bench(
                    target.kafka_bootstrap, target.redis_url, rfqs=quotes
                ):
                    console.print(line)
            elif quotes:
                console.print("quoting not timed: where Kafka and Redis run is unknown")
            if settlements:
                from stack.bench.settlement import run_settlement_bench

                for line in await run_settlement_bench(
                    target.api,
                    tokens,
                    deals=settlements,
                    concurrency=concurrency,
                    database_url=target.database_url,
                ):
                    console.print(line)
            if audit_writers and target.database_url:
                from stack.bench.audit import run_audit_bench

                for line in await run_audit_bench(target.database_url, writers=audit_writers):
                    console.print(line)
            elif audit_writers:
                console.print("audit trail not timed: where the database runs is unknown")

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
