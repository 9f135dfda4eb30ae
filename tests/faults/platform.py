"""A whole platform of its own for crash and soak tests, with every service's path
to PostgreSQL and to Kafka going through a TCP proxy that the test can cut.

Its own servers, so that the invariant check after each fault covers everything
in them: the shared session platform holds other tests' deliberately odd rows
(reservations with no order, synthetic parties) that no check should pass over.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx

from otc.db import make_engine
from otc.settings import Settings
from stack.infra.kafka import EmbeddedKafka
from stack.infra.platform import Platform
from stack.infra.postgres import EmbeddedPostgres
from stack.infra.processes import Child, free_port
from stack.infra.valkey import EmbeddedValkey
from stack.invariants import Break, check_invariants
from tests.e2e_helpers import SERVICE_ENV
from tests.faults.proxy import TcpProxy

# The package a failpoint's name starts with, and the service process it runs in.
SERVICE_OF_PACKAGE = {
    "order_core": "order-core",
    "settlement": "settlement",
    "rfq_service": "rfq-service",
}


FAULT_ENV = {
    **SERVICE_ENV,
    # a restarted service gets the partitions of the one that crashed sooner
    "OTC_KAFKA_SESSION_TIMEOUT_MS": "4000",
}


async def exit_code(child: Child, timeout: float) -> int | None:
    """The child's exit code once it has ended, or None if it still runs after `timeout`."""
    assert child.proc is not None, f"{child.name} was never started"
    try:
        return await asyncio.to_thread(child.proc.wait, timeout)
    except subprocess.TimeoutExpired:
        return None


@dataclass
class Isolated:
    platform: Platform
    database_url: str  # straight to the server, for the test's own reads and checks
    database_proxy: TcpProxy
    broker_proxy: TcpProxy

    async def arm(self, service: str, spec: str) -> None:
        """Arms failpoints in the running `service` through its ops port."""
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.put(self._failpoints(service), content=spec)
        response.raise_for_status()

    async def disarm(self, service: str) -> None:
        async with httpx.AsyncClient(timeout=5) as client:
            (await client.delete(self._failpoints(service))).raise_for_status()

    def _failpoints(self, service: str) -> str:
        return f"http://127.0.0.1:{self.platform.specs[service].ops_port}/failpoints"

    async def revive(self) -> list[str]:
        """Restarts every service that is not running; returns their names."""
        dead = [name for name, child in self.platform.children.items() if not child.alive()]
        for name in dead:
            await self.platform.restart(name, timeout=120)
        return dead

    async def check(self, grace: timedelta) -> list[Break]:
        """The invariants over every service's data, read straight from the server."""
        engine = make_engine(self.database_url, pool_size=2)
        try:
            return await check_invariants(engine, grace=grace)
        finally:
            await engine.dispose()


@asynccontextmanager
async def isolated_platform(state_dir: Path) -> AsyncIterator[Isolated]:
    logs = state_dir / "logs"
    postgres = EmbeddedPostgres(state_dir / "postgres", logs / "postgres.log")
    valkey = EmbeddedValkey(state_dir / "valkey", logs / "valkey.log")
    broker_port = free_port()
    database_proxy = TcpProxy("127.0.0.1", postgres.port)
    broker_proxy = TcpProxy("127.0.0.1", broker_port)
    await database_proxy.start()
    await broker_proxy.start()
    kafka = EmbeddedKafka(logs / "kafka.log", port=broker_port, advertised_port=broker_proxy.port)
    servers: list[EmbeddedPostgres | EmbeddedValkey | EmbeddedKafka] = []
    platform: Platform | None = None
    try:
        for server in (postgres, valkey, kafka):
            server.start()
            servers.append(server)
        settings = Settings(
            database_url=postgres.url.replace(f":{postgres.port}/", f":{database_proxy.port}/"),
            redis_url=valkey.url,
            kafka_bootstrap=kafka.bootstrap,
        )
        platform = Platform(
            settings, state_dir=state_dir, http_port=free_port(), log_dir=logs, env=FAULT_ENV
        )
        platform.start_infrastructure()  # the servers above, through the proxies
        await platform.prepare()
        await platform.start_services(timeout=120)
        yield Isolated(platform, postgres.url, database_proxy, broker_proxy)
    finally:
        if platform is not None:
            for child in platform.children.values():
                child.kill()  # what shutdown drains is of no interest here, only its time
            platform.stop()
        for server in reversed(servers):
            server.stop()
        await broker_proxy.stop()
        await database_proxy.stop()
