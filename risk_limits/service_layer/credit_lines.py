"""Administration of credit lines and reference rates, and exposure queries.

A rate change affects only later freezes: a reservation keeps the amounts it
converted when it was frozen, and gives back exactly those.
"""

from __future__ import annotations

from otc.errors import ValidationFailed
from otc.logging import get_logger
from otc.money import fmt
from risk_limits.domain import commands
from risk_limits.domain.credit import CreditLine, LineKey, parse_amount, require_id
from risk_limits.domain.currency import REFERENCE, ReferenceRate, parse_currency, require_scale
from risk_limits.domain.errors import CreditLineNotFound, CurrencyChangeRefused

from .unit_of_work import Dependencies

log = get_logger(__name__)


def _line_key(party: str, counterparty: str) -> LineKey:
    party = require_id(party, "party")
    if not counterparty:
        return LineKey(party)
    if require_id(counterparty, "counterparty") == party:
        raise ValidationFailed(f"a bilateral line needs two parties; got {party} twice")
    return LineKey(party, counterparty)


async def set_credit_line(cmd: commands.SetCreditLine, deps: Dependencies) -> CreditLine:
    key = _line_key(cmd.party, cmd.counterparty)
    currency = parse_currency(cmd.currency)
    limit = require_scale(parse_amount(cmd.limit, "limit", positive=False), currency, "limit")
    async with deps.uow() as uow:
        line = await uow.credit_lines.upsert(key, currency, limit, deps.clock.now())
        if line is None:
            current = await uow.credit_lines.get(key)
            assert current is not None, "only an existing line refuses an upsert"
            raise CurrencyChangeRefused(
                f"credit line of {key} is in {current.currency} and carries used or "
                f"frozen credit; cannot change it to {currency}"
            )
        await uow.commit()
    log.info("credit line set", line=str(key), currency=currency, limit=fmt(limit))
    return line


async def get_exposure(query: commands.GetExposure, deps: Dependencies) -> CreditLine:
    key = _line_key(query.party, query.counterparty)
    async with deps.uow() as uow:
        line = await uow.credit_lines.get(key)
    if line is None:
        raise CreditLineNotFound(f"no credit line for {key}")
    return line


async def set_reference_rate(cmd: commands.SetReferenceRate, deps: Dependencies) -> ReferenceRate:
    currency = parse_currency(cmd.currency)
    rate = parse_amount(cmd.rate_in_usd, "rate_in_usd", positive=True)
    if currency == REFERENCE and rate != 1:
        raise ValidationFailed(f"rates are quoted in {REFERENCE}: its own rate is 1")
    async with deps.uow() as uow:
        await uow.rates.upsert(currency, rate, deps.clock.now())
        await uow.commit()
    log.info("reference rate set", currency=currency, rate_in_usd=fmt(rate))
    return ReferenceRate(currency, rate)
