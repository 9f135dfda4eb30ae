"""Database connections: one async SQLAlchemy engine per service, over asyncpg."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


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


def make_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    return create_async_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_timeout=POOL_TIMEOUT_S,
        connect_args={"timeout": CONNECT_TIMEOUT_S, "command_timeout": STATEMENT_TIMEOUT_S},
    )
