"""The whole platform on one machine: what `otc up`, the tests, `otc demo` and
`otc bench` start.

Its servers come from the infrastructure provider `OTC_INFRA` names (by default,
embedded servers for whichever of `OTC_DATABASE_URL` / `OTC_REDIS_URL` /
`OTC_KAFKA_BOOTSTRAP` is not set); then it creates the topics, migrates,
seeds the demo data and starts every service as its own OS process (three demo
makers and the reference-price feed included), and waits until each is ready.
`stop()` stops the services first (so they drain), then the servers it started.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from otc.settings import Settings
from stack.infra.kafka import ensure_topics
from stack.infra.processes import Child, free_port
from stack.infra.provider import Endpoints, Infrastructure, infrastructure_for

DEMO_MAKERS: tuple[tuple[str, str], ...] = (
    ("MM-1", "quoting_service.strategies.fixed_spread:FixedSpread"),
    ("MM-2", "quoting_service.strategies.tiered_spread:TieredSpread"),
    ("MM-3", "quoting_service.strategies.inventory_skew:InventorySkew"),
)


@dataclass
class ServiceSpec:
    name: str
    args: list[str]
    ops_port: int
    extra_env: dict[str, str] = field(default_factory=dict)


class Platform:
    def __init__(
        self,
        settings: Settings,
        *,
        state_dir: Path,
        http_port: int | None = None,
        log_dir: Path | None = None,
        makers: tuple[tuple[str, str], ...] = DEMO_MAKERS,
        env: dict[str, str] | None = None,
        risk_port: int | None = None,
        mm_http_port: int | None = None,
        infrastructure: Infrastructure | None = None,
    ) -> None:
        self.settings = settings
        self.state_dir = state_dir.resolve()
        self.http_port = http_port if http_port is not None else settings.http_port
        # a platform on a port of its choosing (tests, a one-off demo) must not take
        # the gateway's default port from one that `otc up` runs
        if mm_http_port is None:
            mm_http_port = settings.mm_http_port if http_port is None else free_port()
        self.mm_http_port = mm_http_port
        self.log_dir = log_dir
        self.makers = makers
        self.extra_env = env or {}
        self.risk_port = risk_port or free_port()
        self.infrastructure = infrastructure or infrastructure_for(settings, self.state_dir)
        self.children: dict[str, Child] = {}
        self.specs: dict[str, ServiceSpec] = {}
        self.endpoints: Endpoints | None = None

    # -- infrastructure ---------------------------------------------------------

    def start_infrastructure(self) -> Endpoints:
        try:
            self.endpoints = self.infrastructure.start()
        except BaseException:
            self.stop()
            raise
        return self.endpoints

    @property
    def started_servers(self) -> list[str]:
        return self.infrastructure.started

    async def prepare(self, *, seed: bool = True) -> None:
        from otc.migrate import upgrade
        from stack.seed import seed_demo

        ep = self._require_endpoints()
        await ensure_topics(ep.kafka_bootstrap, self.settings.kafka_partitions)
        await upgrade(ep.database_url)
        if seed:
            await seed_demo(ep.database_url)

    # -- services ---------------------------------------------------------------

    def service_specs(self) -> list[ServiceSpec]:
        core_port = free_port()  # order_core serves the audit API on its ops port
        specs = [
            ServiceSpec("risk-limits", ["risk-limits"], free_port()),
            ServiceSpec(
                "order-core",
                ["order-core"],
                core_port,
                {
                    "OTC_AUDIT_SIGNING_KEY_FILE": str(self.state_dir / "audit-signing-key.pem"),
                    "OTC_AUDIT_CHECKPOINT_FILE": str(self.state_dir / "audit-checkpoints.jsonl"),
                },
            ),
            ServiceSpec("settlement", ["settlement"], free_port()),
            ServiceSpec(
                "rfq-service",
                ["rfq-service"],
                self.http_port,
                {"OTC_AUDIT_API_URL": f"http://127.0.0.1:{core_port}"},
            ),
            ServiceSpec("price-feed", ["price-feed"], free_port()),
            ServiceSpec(
                "mm-gateway",
                ["mm-gateway"],
                self.mm_http_port,
                {"OTC_MM_HTTP_PORT": str(self.mm_http_port)},
            ),
        ]
        for maker, strategy in self.makers:
            specs.append(
                ServiceSpec(
                    f"quoter-{maker}",
                    ["quoter", "--maker", maker, "--strategy", strategy],
                    free_port(),
                )
            )
        return specs

    def child_env(self, spec: ServiceSpec) -> dict[str, str]:
        ep = self._require_endpoints()
        env = dict(os.environ)
        env.update(self.extra_env)
        env.update(
            {
                "OTC_DATABASE_URL": ep.database_url,
                "OTC_REDIS_URL": ep.redis_url,
                "OTC_KAFKA_BOOTSTRAP": ep.kafka_bootstrap,
                "OTC_RISK_GRPC_HOST": "127.0.0.1",
                "OTC_RISK_GRPC_PORT": str(self.risk_port),
                "OTC_HTTP_PORT": str(self.http_port),
                "OTC_OPS_PORT": str(spec.ops_port),
                "PYTHONUNBUFFERED": "1",
                **spec.extra_env,
            }
        )
        return env

    def spawn(self, spec: ServiceSpec) -> Child:
        log_file = self.log_dir / f"{spec.name}.log" if self.log_dir else None
        child = Child(
            spec.name,
            [sys.executable, "-m", "stack.cli", *spec.args],
            env=self.child_env(spec),
            log_file=log_file,
        )
        child.start()
        self.children[spec.name] = child
        return child

    async def start_services(self, timeout: float = 90.0) -> None:
        specs = self.service_specs()
        self.specs = {s.name: s for s in specs}
        for spec in specs:
            self.spawn(spec)
        await asyncio.gather(*(self.wait_ready(s.name, timeout) for s in specs))

    async def restart(self, name: str, timeout: float = 60.0) -> Child:
        """Starts a stopped or killed service again, with the same ports."""
        old = self.children.get(name)
        if old is not None:
            old.stop()
        child = self.spawn(self.specs[name])
        await self.wait_ready(name, timeout)
        return child

    async def wait_ready(self, name: str, timeout: float) -> None:
        spec = self.specs[name]
        child = self.children[name]
        url = f"http://127.0.0.1:{spec.ops_port}/readyz"
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=1.0) as client:
            while True:
                if not child.alive():
                    raise RuntimeError(f"{name} exited before it was ready{self._log_hint(name)}")
                try:
                    if (await client.get(url)).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name} not ready after {timeout}s{self._log_hint(name)}")
                await asyncio.sleep(0.1)

    def _log_hint(self, name: str) -> str:
        return f" (see {self.log_dir / (name + '.log')})" if self.log_dir else ""

    async def start(self, timeout: float = 90.0) -> Endpoints:
        endpoints = self.start_infrastructure()
        try:
            await self.prepare()
            await self.start_services(timeout)
        except BaseException:
            self.stop()
            raise
        return endpoints

    def stop(self) -> None:
        for child in reversed(list(self.children.values())):
            child.stop()
        self.children.clear()
        self.infrastructure.stop()

    def _require_endpoints(self) -> Endpoints:
        if self.endpoints is None:
            raise RuntimeError("infrastructure not started")
        return self.endpoints
