"""Demo balances of docs/design.md ("Running it"): enough of every asset for any party
to trade the demo instruments for a long time, each opened by a deposit journal."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncEngine

from otc.clock import SystemClock
from settlement.domain.ledger import Account
from settlement.service_layer.unit_of_work import SettlementUnitOfWork

DEMO_BALANCES: dict[str, Decimal] = {
    "BTC": Decimal("1000"),
    "ETH": Decimal("20000"),
    "EUR": Decimal("500000000"),
    "USD": Decimal("2000000000"),
}


async def seed_demo_balances(engine: AsyncEngine, parties: tuple[str, ...]) -> None:
    """Opens the demo balances that are missing. Re-seeding never resets a balance
    that trades have moved, so balances and ledger keep agreeing across restarts."""
    if not parties:
        return
    amounts = {
        Account(party, asset): amount
        for party in parties
        for asset, amount in DEMO_BALANCES.items()
    }
    clock = SystemClock()
    async with SettlementUnitOfWork(engine, clock=clock) as uow:
        await uow.ledger.open_accounts(amounts, booked_at=clock.now())
        await uow.commit()
