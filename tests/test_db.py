"""Pooled connections are not pinged on every checkout; one that died while idle
for long is replaced before anyone uses it, and one that died while in steady use
fails once, as a disconnect, and is then gone from the pool."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from otc import db
from stack.infra.provider import Endpoints

pytestmark = pytest.mark.infra


@pytest.fixture
async def one_connection(endpoints: Endpoints) -> AsyncIterator[AsyncEngine]:
    """An engine whose pool holds a single connection, so each checkout is that one."""
    engine = db.make_engine(endpoints.database_url, pool_size=1)
    yield engine
    await engine.dispose()


async def _backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def _terminate(engine: AsyncEngine, pid: int) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        await conn.commit()


async def test_only_a_connection_idle_for_long_is_pinged(
    one_connection: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    pings: list[object] = []
    real_ping = AsyncAdapt_asyncpg_connection.ping

    def counted(self: AsyncAdapt_asyncpg_connection) -> None:
        pings.append(self)
        real_ping(self)  # type: ignore[no-untyped-call]

    monkeypatch.setattr(AsyncAdapt_asyncpg_connection, "ping", counted)
    for _ in range(3):
        await _backend_pid(one_connection)
    assert pings == [], "a connection in steady use is not pinged"
    monkeypatch.setattr(db, "IDLE_PING_S", 0.0)
    await _backend_pid(one_connection)
    assert len(pings) == 1, "a connection idle for longer than IDLE_PING_S is"


async def test_a_connection_that_died_while_idle_long_is_replaced_unseen(
    one_connection: AsyncEngine, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid = await _backend_pid(one_connection)
    await _terminate(engine, pid)
    monkeypatch.setattr(db, "IDLE_PING_S", 0.0)
    assert await _backend_pid(one_connection) != pid


async def test_a_connection_that_died_in_steady_use_fails_once_then_is_gone(
    one_connection: AsyncEngine, engine: AsyncEngine
) -> None:
    pid = await _backend_pid(one_connection)
    await _terminate(engine, pid)
    with pytest.raises(DBAPIError) as failed:
        await _backend_pid(one_connection)
    assert failed.value.connection_invalidated
    assert await _backend_pid(one_connection) != pid
