"""Credit arithmetic and the validation of what a Freeze asks for.

A party has a gross line, and a bilateral line for each counterparty it may trade
with; each line has a currency of its own, and available = limit - used - frozen.
A leg (party, counterparty, amount, currency) is the party's exposure to the
counterparty: it holds its amount on the party's gross line and on the bilateral
line (party, counterparty), converted into each line's currency. A trade sends one
leg per side, so its freeze checks both parties' gross lines and both directions
of their bilateral line.

Holds are summed per line and applied in line order (party, then counterparty,
the gross line first). Every writer locks lines in that order, so two transactions
never wait on each other in a cycle.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from otc.errors import Conflict, ValidationFailed
from otc.money import InvalidDecimal, fmt, parse_decimal

from .commands import LegRequest
from .currency import EXACT, convert, parse_currency
from .errors import CreditRefused, UnknownParty

MAX_SCALE = 18
MAX_INTEGER_DIGITS = 20
GROSS = ""  # the counterparty of a party's gross line


@dataclass(frozen=True, slots=True, order=True)
class LineKey:
    party: str
    counterparty: str = GROSS

    @property
    def is_gross(self) -> bool:
        return self.counterparty == GROSS

    def __str__(self) -> str:
        return self.party if self.is_gross else f"{self.party} with {self.counterparty}"


@dataclass(frozen=True, slots=True)
class Leg:
    party: str
    counterparty: str
    amount: Decimal
    currency: str

    @property
    def lines(self) -> tuple[LineKey, LineKey]:
        return LineKey(self.party), LineKey(self.party, self.counterparty)


@dataclass(frozen=True, slots=True)
class Hold:
    """Credit that a reservation holds on one line, in that line's currency."""

    line: LineKey
    amount: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class CreditLine:
    key: LineKey
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


def require_uuid(value: str, field: str) -> str:
    """Reservation ids are UUIDs in canonical form, so that one id has one spelling."""
    try:
        canonical: str | None = str(uuid.UUID(value))
    except ValueError:
        canonical = None
    if canonical != value:
        raise ValidationFailed(
            f"{field} must be a UUID in canonical form (lowercase 8-4-4-4-12 hex), "
            f"got {value[:64]!r}"
        )
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


def lines_of(legs: Iterable[Leg]) -> tuple[LineKey, ...]:
    return tuple(sorted({line for leg in legs for line in leg.lines}))


def currencies_to_convert(legs: Iterable[Leg], currencies: Mapping[LineKey, str]) -> set[str]:
    """The currencies whose reference rates the holds of `legs` need (none when
    every leg is already in its lines' currencies)."""
    needed: set[str] = set()
    for leg in legs:
        for line in leg.lines:
            target = currencies.get(line, leg.currency)
            if target != leg.currency:
                needed |= {leg.currency, target}
    return needed


def holds_for(
    legs: Iterable[Leg], currencies: Mapping[LineKey, str], rates: Mapping[str, Decimal]
) -> tuple[Hold, ...]:
    """What `legs` hold on each line, given each existing line's currency. A party
    without a gross line is unknown; a pair without a bilateral line has no credit."""
    ordered = sorted(legs, key=lambda leg: leg.lines)
    for leg in ordered:
        if LineKey(leg.party) not in currencies:
            raise UnknownParty(f"unknown party {leg.party}: it has no credit line")
    for leg in ordered:
        bilateral = LineKey(leg.party, leg.counterparty)
        if bilateral not in currencies:
            raise CreditRefused(f"no credit line for {bilateral}")
    return sum_holds(
        Hold(line, convert(leg.amount, leg.currency, currencies[line], rates), currencies[line])
        for leg in ordered
        for line in leg.lines
    )


def sum_holds(holds: Iterable[Hold]) -> tuple[Hold, ...]:
    """One hold per line, in lock order."""
    totals: dict[LineKey, Hold] = {}
    for hold in holds:
        seen = totals.get(hold.line)
        if seen is None:
            totals[hold.line] = hold
        elif seen.currency != hold.currency:
            # A line changes currency only while it holds nothing, so this is a bug.
            raise ValueError(f"holds on {hold.line} in {seen.currency} and {hold.currency}")
        else:
            totals[hold.line] = Hold(hold.line, EXACT.add(seen.amount, hold.amount), seen.currency)
    return tuple(totals[line] for line in sorted(totals))


def refusal(asked: Hold, line: CreditLine | None) -> Conflict:
    """Why a conditional freeze of `asked` matched no row, for the caller to read."""
    if line is None:
        return CreditRefused(f"no credit line for {asked.line}")
    if line.currency != asked.currency:
        # An admin re-denominated the (then empty) line between our read and write.
        return Conflict(f"credit line of {asked.line} changed currency during the freeze; retry")
    return CreditRefused(
        f"insufficient credit for {asked.line}: asked {fmt(asked.amount)} {asked.currency}, "
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
