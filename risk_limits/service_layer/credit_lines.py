"""Credit line administration and exposure queries."""

from __future__ import annotations

from otc.logging import get_logger
from otc.money import fmt
from risk_limits.domain import commands
from risk_limits.domain.credit import CreditLine, parse_amount, parse_currency, require_id
from risk_limits.domain.errors import CreditLineNotFound, CurrencyChangeRefused

from .dependencies import Dependencies

log = get_logger(__name__)


async def set_credit_line(cmd: commands.SetCreditLine, deps: Dependencies) -> CreditLine:
    party = require_id(cmd.party, "party")
    currency = parse_currency(cmd.currency)
    limit = parse_amount(cmd.limit, "limit", positive=False)
    async with deps.uow() as uow:
        line = await uow.credit_lines.upsert(party, currency, limit, deps.clock.now())
        if line is None:
            current = await uow.credit_lines.get(party)
            assert current is not None, "only an existing line refuses an upsert"
            raise CurrencyChangeRefused(
                f"credit line of {party} is in {current.currency} and carries used or "
                f"frozen credit; cannot change it to {currency}"
            )
        await uow.commit()
    log.info("credit line set", party=party, currency=currency, limit=fmt(limit))
    return line


async def get_exposure(query: commands.GetExposure, deps: Dependencies) -> CreditLine:
    party = require_id(query.party, "party")
    async with deps.uow() as uow:
        line = await uow.credit_lines.get(party)
    if line is None:
        raise CreditLineNotFound(f"no credit line for {party}")
    return line
