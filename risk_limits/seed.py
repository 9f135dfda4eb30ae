"""Demo credit (docs/design.md, "Running it"): reference rates for the demo currencies, a
gross line for every demo party and a bilateral line for every ordered pair of
them, so that the demo trades out of the box.

The caller names parties without roles, so every pair gets a line, which covers
every trader/maker pair; a line nobody trades on holds nothing.
"""

from __future__ import annotations

from decimal import Decimal
from itertools import permutations

from sqlalchemy.ext.asyncio import AsyncEngine

from otc.clock import SystemClock
from otc.instruments import INSTRUMENTS
from risk_limits.domain.credit import LineKey
from risk_limits.domain.currency import REFERENCE
from risk_limits.service_layer.unit_of_work import PRODUCER, CreditUnitOfWork

DEMO_CURRENCY = "USD"
DEMO_LIMIT = Decimal("250000000")
DEMO_BILATERAL_LIMIT = Decimal("100000000")


def demo_rates() -> dict[str, Decimal]:
    """USD and every asset quoted in USD, at the price the simulated feed starts from."""
    rates = {REFERENCE: Decimal(1)}
    for instrument in INSTRUMENTS.values():
        if instrument.quote == REFERENCE:
            rates[instrument.base] = instrument.reference_mid
    return rates


async def seed_demo_credit(engine: AsyncEngine, parties: tuple[str, ...]) -> None:
    """Sets the demo rates and lines; running it again changes nothing."""
    now = SystemClock().now()
    lines = [(LineKey(p), DEMO_LIMIT) for p in parties] + [
        (LineKey(p, c), DEMO_BILATERAL_LIMIT) for p, c in permutations(parties, 2)
    ]
    async with CreditUnitOfWork(engine, producer=PRODUCER, clock=SystemClock()) as uow:
        for currency, rate in demo_rates().items():
            await uow.rates.upsert(currency, rate, now)
        for key, limit in lines:
            if await uow.credit_lines.upsert(key, DEMO_CURRENCY, limit, now) is None:
                raise RuntimeError(f"credit line of {key} carries credit in another currency")
        await uow.commit()
