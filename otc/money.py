"""Exact decimal money: parsed from strings, printed as strings, never a float."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation


class InvalidDecimal(ValueError):
    """A price, quantity or amount that is not a finite decimal string."""


MAX_DIGITS = 38


def parse_decimal(text: str, *, field: str = "value", positive: bool = False) -> Decimal:
    if not isinstance(text, str):
        raise InvalidDecimal(f"{field} must be a decimal string, got {type(text).__name__}")
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise InvalidDecimal(f"{field} is not a decimal: {text!r}") from None
    if not value.is_finite():
        raise InvalidDecimal(f"{field} must be finite: {text!r}")
    if len(value.as_tuple().digits) > MAX_DIGITS:
        raise InvalidDecimal(f"{field} has more than {MAX_DIGITS} digits")
    if positive and value <= 0:
        raise InvalidDecimal(f"{field} must be positive: {text!r}")
    return value


def fmt(value: Decimal) -> str:
    """Plain notation (no exponent), trailing zeros kept as they are."""
    return format(value, "f")


def round_to_tick(price: Decimal, tick: Decimal, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    """`price` on the instrument's price grid; `rounding` is a `decimal` mode."""
    return (price / tick).to_integral_value(rounding=rounding) * tick
