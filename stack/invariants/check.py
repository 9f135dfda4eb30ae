"""`check_invariants`: read one snapshot of every service's books, then judge it."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from otc.db import make_engine

from .reading import read_snapshot
from .rules import find_breaks
from .snapshot import Break

DEFAULT_GRACE = timedelta(seconds=30)


async def check_invariants(
    engine: AsyncEngine, *, grace: timedelta = DEFAULT_GRACE, now: datetime | None = None
) -> list[Break]:
    """Every break in the books as of one snapshot (empty: they are consistent).

    Without `now`, the snapshot is judged as of the moment it was taken, by the
    database's clock, so that neither the checker's clock skew nor the time the
    reads take ages what the snapshot shows. With it (the end-of-day batch passes
    the day's close), a row younger than the grace at `now`, or newer than `now`,
    is in flight, whenever the check runs."""
    async with engine.connect() as conn:
        reader = await conn.execution_options(
            isolation_level="REPEATABLE READ", postgresql_readonly=True
        )
        async with reader.begin():
            snapshot = await read_snapshot(reader, now)
    return find_breaks(snapshot, grace)


async def check_database(database_url: str, *, grace: timedelta = DEFAULT_GRACE) -> list[Break]:
    """`check_invariants` over an engine of its own, for a command that has none."""
    engine = make_engine(database_url, pool_size=1)
    try:
        return await check_invariants(engine, grace=grace)
    finally:
        await engine.dispose()
