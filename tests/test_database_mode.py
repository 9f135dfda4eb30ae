"""Which durability a benchmarked PostgreSQL runs with, read from the server itself:
the session's database, and an embedded one `OTC_POSTGRES_DURABLE` makes durable."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from otc.settings import Settings
from stack.bench.database_mode import SETTINGS, database_mode, mode_of
from stack.infra.platform import Platform
from stack.infra.provider import Endpoints, infrastructure_for


@pytest.mark.parametrize(
    ("fsync", "synchronous_commit", "full_page_writes", "mode"),
    [
        ("on", "on", "on", "durable"),
        ("on", "remote_apply", "on", "durable"),
        ("on", "local", "on", "durable"),
        ("off", "off", "off", "development"),
        ("on", "off", "on", "partly durable"),
        ("off", "on", "off", "partly durable"),
    ],
)
def test_the_mode_is_durable_only_with_all_three_on(
    fsync: str, synchronous_commit: str, full_page_writes: str, mode: str
) -> None:
    assert mode_of(fsync, synchronous_commit, full_page_writes) == mode


async def test_the_session_database_reports_what_it_shows(
    endpoints: Endpoints, engine: AsyncEngine, launcher: Platform
) -> None:
    async with engine.connect() as conn:
        shown = {name: (await conn.execute(text(f"SHOW {name}"))).scalar_one() for name in SETTINGS}

    reported = await database_mode(endpoints.database_url)

    assert reported == {"mode": mode_of(**shown), **shown}
    if "Postgres" in launcher.started_servers and not launcher.settings.postgres_durable:
        assert reported["mode"] == "development"


@pytest.mark.infra
async def test_an_embedded_postgres_set_durable_reports_durable(tmp_path: Path) -> None:
    # Given URLs for the others, the embedded provider starts PostgreSQL alone.
    settings = Settings(
        infra="embedded",
        postgres_durable=True,
        database_url=None,
        redis_url="redis://127.0.0.1:1/0",
        kafka_bootstrap="127.0.0.1:1",
    )
    infrastructure = infrastructure_for(settings, tmp_path)
    try:
        started = await asyncio.to_thread(infrastructure.start)
        assert infrastructure.started == ["Postgres"]
        reported = await database_mode(started.database_url)
    finally:
        await asyncio.to_thread(infrastructure.stop)

    assert reported == {
        "mode": "durable",
        "fsync": "on",
        "synchronous_commit": "on",
        "full_page_writes": "on",
    }
