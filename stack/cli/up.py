"""`otc up`: the whole platform on this machine until Ctrl-C.

It writes down where the servers run (the endpoints file) and which process runs
each service, so that the other commands (`otc check`, `otc chaos`, `otc quoter`,
`otc eod`) find them, and removes both when it stops.
"""

from __future__ import annotations

import asyncio
import signal
from dataclasses import asdict
from functools import partial
from typing import TYPE_CHECKING, Annotated

import typer

from otc.auth import Role
from otc.endpoints import ENDPOINTS_FILE, write_endpoints
from otc.logging import configure
from otc.settings import Settings, get_settings
from stack.cli.shared import console, mint

if TYPE_CHECKING:
    from stack.infra.platform import Platform


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
    code = asyncio.run(run_up(settings, fail_fast=fail_fast))
    raise typer.Exit(code)


async def run_up(settings: Settings, *, fail_fast: bool = False) -> int:
    from stack.infra.platform import Platform
    from stack.infra.processes import port_in_use
    from stack.infra.supervisor import SERVICES_FILE, Supervisor, first_exit, write_services

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
        recorded = {
            **asdict(endpoints),
            "risk_target": f"127.0.0.1:{platform.risk_port}",
            "gateway_url": f"http://127.0.0.1:{platform.mm_http_port}",
        }
        write_endpoints(state_dir / ENDPOINTS_FILE, recorded)
        print_banner(platform)
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


def print_banner(platform: Platform) -> None:
    endpoints = platform.endpoints
    assert endpoints is not None
    started = ", ".join(platform.started_servers) or "none (using OTC_* URLs)"
    url = f"http://127.0.0.1:{platform.http_port}"
    console.print(
        f"""
[bold green]OTC RFQ platform is up[/bold green]
  trader API      {url}   (OpenAPI: {url}/docs, WebSocket: ws://127.0.0.1:{platform.http_port}/v1/ws)
  {platform.settings.infra:<16}{started}
  PostgreSQL      {endpoints.database_url}
  Redis           {endpoints.redis_url}
  Kafka           {endpoints.kafka_bootstrap}
  risk gRPC       127.0.0.1:{platform.risk_port}   (try: .venv/bin/otc risk exposure TRADER-A)
  maker bots      ws://127.0.0.1:{platform.mm_http_port}/v1/mm/ws   (kill switch: otc quoter kill)
  services        {", ".join(platform.children)}
  logs            {platform.state_dir / "logs"}

  token (TRADER-A): {mint("TRADER-A", Role.TRADER)}

  try it:  .venv/bin/otc demo        stop: Ctrl-C
""",
        soft_wrap=True,
    )
