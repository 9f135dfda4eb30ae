"""Demo data of docs/design.md ("Running it"): parties, credit lines and balances.

Each service seeds its own schema through its own adapter; this only calls them.
"""

from __future__ import annotations

from otc.db import make_engine
from risk_limits.seed import seed_demo_credit
from settlement.seed import seed_demo_balances

TRADERS = ("TRADER-A", "TRADER-B")
MAKERS = ("MM-1", "MM-2", "MM-3")


async def seed_demo(database_url: str) -> None:
    engine = make_engine(database_url, pool_size=1)
    try:
        await seed_demo_credit(engine, TRADERS + MAKERS)
        await seed_demo_balances(engine, TRADERS + MAKERS)
    finally:
        await engine.dispose()
