"""Whether the PostgreSQL a benchmark measures commits as a production server does.

The embedded server runs with fsync, synchronous_commit and full_page_writes off
unless `OTC_POSTGRES_DURABLE` is set; its commits then skip the flushes to disk a
production server waits for, so a figure means little without the mode it was taken in.
"""

from __future__ import annotations

import asyncpg

from otc.db import asyncpg_dsn

SETTINGS = ("fsync", "synchronous_commit", "full_page_writes")


def mode_of(fsync: str, synchronous_commit: str, full_page_writes: str) -> str:
    """`durable`, `development` (all three off) or `partly durable`, from `SHOW` values."""
    # Every synchronous_commit but `off` (on, local, remote_write, remote_apply)
    # waits for the commit's WAL to be flushed locally.
    flags = (fsync == "on", synchronous_commit != "off", full_page_writes == "on")
    if all(flags):
        return "durable"
    if not any(flags):
        return "development"
    return "partly durable"


async def database_mode(database_url: str) -> dict[str, str]:
    """The mode of the server at `database_url`, beside the three settings it is read from."""
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        shown = {name: str(await connection.fetchval(f"SHOW {name}")) for name in SETTINGS}
    finally:
        await connection.close()
    return {"mode": mode_of(**shown), **shown}
