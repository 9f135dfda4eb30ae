"""Demo credit lines (DESIGN.md, "Running it"): every demo party may trade."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncEngine

from otc.clock import SystemClock
from risk_limits.service_layer.unit_of_work import UnitOfWork

DEMO_CURRENCY = "USD"
DEMO_LIMIT = Decimal("250000000")


async def seed_demo_credit(engine: AsyncEngine, parties: tuple[str, ...]) -> None:
    """Sets each party's line to the demo limit; running it again changes nothing."""
    now = SystemClock().now()
    async with UnitOfWork(engine) as uow:
        for party in parties:
            if await uow.credit_lines.upsert(party, DEMO_CURRENCY, DEMO_LIMIT, now) is None:
                raise RuntimeError(f"credit line of {party} carries credit in another currency")
        await uow.commit()
