"""Runs a multi-statement SQL script inside a migration.

asyncpg prepares every statement it is given, and a prepared statement holds one
command; its plain `execute()` (the simple query protocol) takes a whole script.
"""

from __future__ import annotations

from alembic import op
from sqlalchemy.util import await_only


def run_script(sql: str) -> None:
    driver_connection = op.get_bind().connection.driver_connection
    await_only(driver_connection.execute(sql))
