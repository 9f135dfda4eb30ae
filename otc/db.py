"""Database connections: one async SQLAlchemy engine per service, over asyncpg."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry


def sqlalchemy_url(url: str) -> str:
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError(f"not a PostgreSQL URL: {url!r}")


def asyncpg_dsn(url: str) -> str:
    return "postgresql://" + sqlalchemy_url(url)[len("postgresql+asyncpg://") :]


# Nothing may wait for ever: a connection that cannot be had or a statement that
# does not finish raises (a transient error the callers retry) instead of hanging.
# The pool wait is the longest: a burst of hundreds of requests on two cores
# legitimately queues for seconds.
POOL_TIMEOUT_S = 30
CONNECT_TIMEOUT_S = 5
STATEMENT_TIMEOUT_S = 15


# A pooled connection idle for longer than this is pinged before it is handed out.
# Pinging every checkout (SQLAlchemy's pre-ping) costs three round trips (BEGIN, a
# statement, ROLLBACK) on every transaction, about a third of a short one's trips;
# a connection in steady use proves itself alive by being used, and one that died
# under a busy service fails its first statement with a disconnect, which drops it
# from the pool and is retried like any transient error.
IDLE_PING_S = 5.0


def make_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    engine = create_async_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=POOL_TIMEOUT_S,
        connect_args={"timeout": CONNECT_TIMEOUT_S, "command_timeout": STATEMENT_TIMEOUT_S},
    )
    event.listen(engine.sync_engine, "checkin", _went_idle)
    event.listen(engine.sync_engine, "checkout", _ping_if_idle_long)
    return engine


def _went_idle(_: Any, record: ConnectionPoolEntry) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_if_idle_long(dbapi_connection: Any, record: ConnectionPoolEntry, _: Any) -> None:
    idle_since = record.info.get("idle_since")
    if idle_since is None or time.monotonic() - idle_since < IDLE_PING_S:
        return
    try:
        dbapi_connection.ping()
    except Exception as exc:
        # The pool drops this connection and checks out another (or a new one).
        raise DisconnectionError(f"pooled connection is dead: {exc!r}") from exc
