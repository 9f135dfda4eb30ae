"""risk_limits is built with what the settings say: its pool size comes from
`OTC_RISK_LIMITS_DB_POOL_SIZE`, read from the environment. Nothing is started."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

from otc.db import make_engine
from otc.settings import Settings
from risk_limits import bootstrap


async def test_the_database_pool_is_the_size_the_environment_sets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built: list[AsyncEngine] = []

    def recording(url: str, *, pool_size: int) -> AsyncEngine:
        built.append(make_engine(url, pool_size=pool_size))
        return built[-1]

    monkeypatch.setattr(bootstrap, "make_engine", recording)
    monkeypatch.setenv("OTC_RISK_LIMITS_DB_POOL_SIZE", "3")
    # Never connected to: building a service opens no connection.
    settings = Settings(database_url="postgresql://otc@127.0.0.1:1/otc", kafka_bootstrap="x:1")

    service = bootstrap.build(settings)
    try:
        (engine,) = built
        assert isinstance(engine.pool, QueuePool)
        assert engine.pool.size() == 3
    finally:
        await service.close()
