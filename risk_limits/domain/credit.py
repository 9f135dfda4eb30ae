"""Credit arithmetic and the validation of what a Freeze asks for.

A party has one gross credit line in one currency: available = limit - used - frozen.
A Freeze carries legs; each leg consumes credit of its own `party`, so legs are
summed per party and applied in party order (the order every writer locks lines in).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Context, Decimal, Inexact, InvalidOperation, Rounded

from otc.errors import ValidationFailed
from otc.money import InvalidDecimal, fmt, parse_decimal

from .commands import LegRequest
from .errors import CreditRefused

MAX_SCALE = 18
MAX_INTEGER_DIGITS = 20
_CURRENCY = re.compile(r"[A-Z]{3}")

# Wide enough for sums of bounded amounts; a trap instead of silent rounding if not.
EXACT = Context(prec=100, traps=[InvalidOperation, Inexact, Rounded])


@dataclass(frozen=True, slots=True)
class Leg:
    party: str
    counterparty: str
    amount: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class PartyAmount:
    party: str
    currency: str
    amount: Decimal


@dataclass(frozen=True, slots=True)
class CreditLine:
    party: str
    currency: str
    limit: Decimal
    used: Decimal
    frozen: Decimal

    @property
    def available(self) -> Decimal:
        return EXACT.subtract(EXACT.subtract(self.limit, self.used), self.frozen)


def require_id(value: str, field: str) -> str:
    if not value or value != value.strip():
        raise ValidationFailed(f"{field} must be a non-empty id without surrounding spaces")
    return value


def parse_currency(value: str) -> str:
    if not _CURRENCY.fullmatch(value):
        raise ValidationFailed(f"currency must be a three-letter ISO code, got {value!r}")
    return value


def parse_amount(text: str, field: str, *, positive: bool) -> Decimal:
    try:
        value = parse_decimal(text, field=field, positive=positive)
    except InvalidDecimal as exc:
        raise ValidationFailed(str(exc)) from None
    if value < 0:
        raise ValidationFailed(f"{field} must not be negative: {text!r}")
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)  # finite, checked by parse_decimal
    if -exponent > MAX_SCALE:
        raise ValidationFailed(f"{field} has more than {MAX_SCALE} decimal places: {text!r}")
    if value.adjusted() >= MAX_INTEGER_DIGITS:
        raise ValidationFailed(f"{field} is too large: {text!r}")
    return value


def parse_leg(party: str, counterparty: str, amount: str, currency: str) -> Leg:
    party = require_id(party, "party")
    counterparty = require_id(counterparty, "counterparty")
    if party == counterparty:
        raise ValidationFailed(f"leg of {party} names itself as counterparty")
    return Leg(
        party=party,
        counterparty=counterparty,
        amount=parse_amount(amount, "amount", positive=True),
        currency=parse_currency(currency),
    )


def parse_legs(requests: Iterable[LegRequest]) -> tuple[Leg, ...]:
    legs = tuple(parse_leg(r.party, r.counterparty, r.amount, r.currency) for r in requests)
    if not legs:
        raise ValidationFailed("a freeze needs at least one leg")
    return legs


def amounts_by_party(legs: Iterable[Leg]) -> tuple[PartyAmount, ...]:
    """Sums legs per party, sorted by party so that every transaction locks credit
    lines in the same order (two freezes never wait on each other in a cycle)."""
    totals: dict[str, PartyAmount] = {}
    for leg in legs:
        seen = totals.get(leg.party)
        if seen is None:
            totals[leg.party] = PartyAmount(leg.party, leg.currency, leg.amount)
        elif seen.currency != leg.currency:
            raise ValidationFailed(
                f"legs of {leg.party} mix currencies {seen.currency} and {leg.currency}"
            )
        else:
            totals[leg.party] = PartyAmount(
                leg.party, leg.currency, EXACT.add(seen.amount, leg.amount)
            )
    return tuple(totals[party] for party in sorted(totals))


def refusal(asked: PartyAmount, line: CreditLine | None) -> CreditRefused | ValidationFailed:
    """Why a conditional freeze of `asked` matched no row, for the caller to read."""
    if line is None:
        return CreditRefused(f"no credit line for {asked.party}")
    if line.currency != asked.currency:
        return ValidationFailed(
            f"credit line of {asked.party} is in {line.currency}, not {asked.currency}"
        )
    return CreditRefused(
        f"insufficient credit for {asked.party}: asked {fmt(asked.amount)} {asked.currency}, "
        f"available {fmt(line.available)} {line.currency}"
    )


def request_hash(rfq_id: str, legs: Iterable[Leg]) -> str:
    """A fingerprint of what a Freeze asks for, to tell a retry from a reused id.

    Leg order and the spelling of amounts ("1e6", "1000000.00") do not change it.
    The deadline is left out on purpose: a caller retrying after a timeout may
    recompute it, and it still asks for the same credit.
    """
    canonical = sorted(
        (leg.party, leg.counterparty, fmt(leg.amount.normalize(EXACT)), leg.currency)
        for leg in legs
    )
    payload = json.dumps([rfq_id, canonical], separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()
