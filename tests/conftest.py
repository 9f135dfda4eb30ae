"""Session-scoped real servers, started once through the same launcher as `otc up`.

`endpoints` gives embedded PostgreSQL, Valkey and Kafka (migrated, topics
created, demo data seeded), or the servers named by `OTC_DATABASE_URL`,
`OTC_REDIS_URL` and `OTC_KAFKA_BOOTSTRAP` when those are set. `platform` adds every
service as its own process on top. Tests marked `infra` need them.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from otc.db import make_engine
from otc.settings import Settings
from stack.infra.platform import Platform
from stack.infra.processes import free_port
from stack.infra.provider import Endpoints
from tests.e2e_helpers import SERVICE_ENV

# Tests run on any day of the week, FX weekends included; set before any settings
# are read, for the services tests run in-process too.
os.environ.setdefault("OTC_CALENDAR", "always_open")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if {"endpoints", "platform", "engine", "redis_url"} & set(
            getattr(item, "fixturenames", ())
        ):
            item.add_marker(pytest.mark.infra)


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("otc")


@pytest.fixture(scope="session")
def launcher(state_dir: Path) -> Iterator[Platform]:
    os.environ.setdefault("OTC_ENV", "test")
    platform = Platform(
        Settings(),
        state_dir=state_dir,
        http_port=free_port(),
        log_dir=state_dir / "logs",
        env=SERVICE_ENV,
    )
    try:
        yield platform
    finally:
        platform.stop()


@pytest.fixture(scope="session")
async def endpoints(launcher: Platform) -> Endpoints:
    if launcher.endpoints is None:
        launcher.start_infrastructure()
        await launcher.prepare()
    assert launcher.endpoints is not None
    return launcher.endpoints


@pytest.fixture(scope="session")
async def platform(launcher: Platform, endpoints: Endpoints) -> Platform:
    if not launcher.children:
        await launcher.start_services()
    return launcher


@pytest.fixture(scope="session")
async def engine(endpoints: Endpoints) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(endpoints.database_url, pool_size=5)
    yield eng
    await eng.dispose()
