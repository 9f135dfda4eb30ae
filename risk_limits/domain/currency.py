"""Currencies of credit lines: how finely each one counts, and the conversion of an
amount into a line's currency through the reference rates an admin sets (the worth
of one unit in USD).

A converted amount is rounded *up* to the line's smallest unit, as is a notional
finer than that unit (quantity x price often is): credit is never under-reserved,
and a line never holds a fraction of a cent. Limits are the admin's own figures and
must already fit the line's currency.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, Context, Decimal, Inexact, InvalidOperation, Rounded

from otc.errors import ValidationFailed

from .errors import MissingReferenceRate

# Wide enough for sums of bounded amounts; a trap instead of silent rounding if not.
EXACT = Context(prec=100, traps=[InvalidOperation, Inexact, Rounded])
# For the one inexact step, the division of a conversion: it may only round up.
_UPWARD = Context(prec=100, rounding=ROUND_CEILING, traps=[InvalidOperation])

REFERENCE = "USD"

# Decimal places of each currency a line may be kept in (ISO 4217 minor units;
# satoshi for BTC, wei for ETH).
SCALES: dict[str, int] = {
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
    "CHF": 2,
    "JPY": 0,
    "BTC": 8,
    "ETH": 18,
}

_CODE = re.compile(r"[A-Z]{3}")


@dataclass(frozen=True, slots=True)
class ReferenceRate:
    currency: str
    rate_in_usd: Decimal  # what one unit of `currency` is worth in USD


def parse_currency(value: str) -> str:
    if not _CODE.fullmatch(value):
        raise ValidationFailed(f"currency must be a three-letter ISO code, got {value!r}")
    if value not in SCALES:
        raise ValidationFailed(
            f"unsupported currency {value}; supported: {', '.join(sorted(SCALES))}"
        )
    return value


def decimal_places(value: Decimal) -> int:
    """Significant decimal places: "100.50" has one, "1E+3" none."""
    exponent = value.normalize(EXACT).as_tuple().exponent
    assert isinstance(exponent, int), "only finite amounts reach here"
    return max(0, -exponent)


def require_scale(value: Decimal, currency: str, field: str) -> Decimal:
    scale = SCALES[currency]
    if decimal_places(value) > scale:
        raise ValidationFailed(
            f"{field} {value} has more decimal places than {currency} allows ({scale})"
        )
    return value


def round_up(value: Decimal, currency: str) -> Decimal:
    """`value` if it is written within the currency's decimals, else the smallest
    amount at or above it that is ("0.6500" USD is 0.65, "6500.001" is 6500.01)."""
    scale = SCALES[currency]
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int), "only finite amounts reach here"
    if exponent >= -scale:
        return value
    return value.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_CEILING, context=_UPWARD)


def convert(amount: Decimal, source: str, target: str, rates: Mapping[str, Decimal]) -> Decimal:
    """`amount` of `source` in `target`, rounded up to `target`'s smallest unit."""
    if source == target:
        return round_up(amount, target)
    missing = sorted(c for c in (source, target) if c not in rates)
    if missing:
        raise MissingReferenceRate(
            f"no reference rate for {', '.join(missing)}: cannot convert {source} "
            f"into {target}; an admin sets it with `otc risk set-rate`"
        )
    in_usd = EXACT.multiply(amount, rates[source])
    return round_up(_UPWARD.divide(in_usd, rates[target]), target)
