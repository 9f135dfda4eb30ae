"""How every service process runs: start, report ready, run, stop gracefully.

A service implements the small `Service` protocol; `serve` adds what all of them
share: SIGTERM/SIGINT handling that asks the service to stop (finish in-flight
work, flush, close), and an ops HTTP server with `/healthz`, `/readyz` (false
until the service is ready and again while it drains) and `/metrics`.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from typing import Protocol

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from otc.http_server import http_server
from otc.logging import get_logger
from otc.settings import Settings

log = get_logger(__name__)


class Service(Protocol):
    name: str

    async def start(self) -> None: ...

    def ready(self) -> bool: ...

    async def run(self) -> None: ...

    async def stop(self) -> None: ...

    async def close(self) -> None: ...


def ops_routes(ready: Callable[[], bool]) -> list[Route]:
    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        ok = ready()
        return JSONResponse({"ready": ok}, status_code=200 if ok else 503)

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
    ]


async def serve(service: Service, settings: Settings) -> None:
    draining = False

    def is_ready() -> bool:
        return not draining and service.ready()

    ops = None
    ops_task: asyncio.Task[None] | None = None
    if settings.ops_port and not getattr(service, "has_own_http", False):
        ops = http_server(Starlette(routes=ops_routes(is_ready)), "0.0.0.0", settings.ops_port)
        ops_task = asyncio.create_task(ops.serve())

    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_requested.set)

    await service.start()
    log.info("service ready", service=service.name)
    run_task = asyncio.create_task(service.run())
    stop_wait = asyncio.create_task(stop_requested.wait())
    await asyncio.wait({run_task, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
    draining = True
    log.info("service stopping", service=service.name)
    await service.stop()
    try:
        await run_task
    finally:
        stop_wait.cancel()
        await service.close()
        if ops is not None and ops_task is not None:
            ops.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await ops_task
    log.info("service stopped", service=service.name)
