"""How every service process runs: start, report ready, run, stop gracefully.

A service implements the small `Service` protocol; `serve` adds what all of them
share: SIGTERM/SIGINT handling that asks the service to stop (finish in-flight
work, flush, close) within `OTC_SHUTDOWN_GRACE_S`, an ops HTTP server with
`/healthz`, `/readyz` (false until the service is ready and again while it
drains) and `/metrics`, and tracing as `OTC_OTEL_EXPORTER` says.

A service that drained in time exits 0. One that did not has its work cut off
and `serve` raises `ShutdownCutOff`, on which the process exits 1, so that the
orchestrator records the shutdown as unclean; whatever was cut off is
redelivered to the next owner, and idempotent handlers absorb it.
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

from otc import failpoints, tracing
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

    routes = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
    ]
    if failpoints.armable_at_runtime():
        routes.append(Route("/failpoints", failpoints_endpoint, methods=["PUT", "DELETE"]))
    return routes


async def failpoints_endpoint(request: Request) -> Response:
    """Test environments only: PUT arms the failpoints named in the body, DELETE
    disarms them all."""
    if request.method == "DELETE":
        failpoints.disarm()
        return JSONResponse({"armed": []})
    try:
        failpoints.arm((await request.body()).decode())
    except (ValueError, UnicodeDecodeError) as exc:
        error = {"code": "invalid_failpoint", "message": str(exc)}
        return JSONResponse({"error": error}, status_code=400)
    return JSONResponse({"armed": failpoints.armed()})


CLOSE_AFTER_CUT_OFF_S = 5.0  # to let go of connections once work was cut off
EXIT_CUT_OFF = 1


class ShutdownCutOff(Exception):
    """The service did not drain within its grace period; its work was cancelled."""


async def serve(service: Service, settings: Settings) -> None:
    tracing.configure(service.name, settings.otel_exporter, settings.otel_endpoint)
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
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, stop_requested.set)
    try:
        await service.start()
        log.info("service ready", service=service.name)
        run_task = asyncio.create_task(service.run())
        stop_wait = asyncio.create_task(stop_requested.wait())
        await asyncio.wait({run_task, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        stop_wait.cancel()
        draining = True
        grace = settings.shutdown_grace_s
        log.info("service stopping", service=service.name, grace_s=grace)
        in_time = await _stop(service, run_task, grace)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        if ops is not None and ops_task is not None:
            ops.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await ops_task
        tracing.shutdown()
    failure = None if run_task.cancelled() else run_task.exception()
    if failure is not None:
        raise failure
    if not in_time:
        log.error("service cut off after its grace period", service=service.name, grace_s=grace)
        raise ShutdownCutOff(f"{service.name} did not drain within {grace} s")
    log.info("service stopped", service=service.name)


async def _stop(service: Service, run_task: asyncio.Task[None], grace_s: float) -> bool:
    """Stops and closes the service; False if that took longer than `grace_s` and
    its work was cancelled."""
    closing = False
    deadline = asyncio.timeout(grace_s)
    try:
        async with deadline:
            await service.stop()
            await asyncio.wait({run_task})
            closing = True
            await service.close()
        return True
    except TimeoutError:
        if not deadline.expired():
            raise
    run_task.cancel()
    await asyncio.wait({run_task}, timeout=CLOSE_AFTER_CUT_OFF_S)
    if not closing:
        try:
            async with asyncio.timeout(CLOSE_AFTER_CUT_OFF_S):
                await service.close()
        except Exception as exc:  # exiting anyway; the exit code says it was unclean
            log.warning("service did not close cleanly", error=f"{type(exc).__name__}: {exc}")
    return False
