"""Currencies of credit lines: precision and conversion by reference rates (pure)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from otc.errors import ValidationFailed
from risk_limits.domain.currency import (
    convert,
    decimal_places,
    parse_currency,
    require_scale,
    round_up,
)
from risk_limits.domain.errors import MissingReferenceRate
from risk_limits.seed import demo_rates

RATES = {"USD": Decimal("1"), "EUR": Decimal("1.08"), "BTC": Decimal("65000")}


@pytest.mark.parametrize(("text", "places"), [("100", 0), ("100.50", 1), ("1E+3", 0), ("0.001", 3)])
def test_decimal_places_count_what_is_significant(text: str, places: int) -> None:
    assert decimal_places(Decimal(text)) == places


@pytest.mark.parametrize(
    ("amount", "currency"), [("0.001", "USD"), ("1.5", "JPY"), ("0.000000001", "BTC")]
)
def test_an_amount_finer_than_its_currency_is_refused(amount: str, currency: str) -> None:
    with pytest.raises(ValidationFailed, match=f"more decimal places than {currency} allows"):
        require_scale(Decimal(amount), currency, "limit")


@pytest.mark.parametrize(
    ("amount", "currency"), [("100.10", "USD"), ("100.000", "EUR"), ("7", "JPY"), ("1E-18", "ETH")]
)
def test_an_amount_within_its_currency_is_kept_as_written(amount: str, currency: str) -> None:
    assert str(require_scale(Decimal(amount), currency, "limit")) == amount


@pytest.mark.parametrize(
    ("amount", "currency", "rounded"),
    [
        ("10", "USD", "10"),
        ("0.6500", "USD", "0.65"),
        ("6500.001", "USD", "6500.01"),
        ("0.000000001", "BTC", "1E-8"),
    ],
)
def test_rounding_goes_up_to_the_smallest_unit(amount: str, currency: str, rounded: str) -> None:
    assert str(round_up(Decimal(amount), currency)) == rounded


def test_conversion_goes_through_usd_and_rounds_up() -> None:
    assert convert(Decimal("108"), "USD", "EUR", RATES) == Decimal("100")
    # 100 USD is 92.592592... EUR: the line holds the next cent.
    assert convert(Decimal("100"), "USD", "EUR", RATES) == Decimal("92.60")
    assert convert(Decimal("130000"), "USD", "BTC", RATES) == Decimal("2")
    assert convert(Decimal("1"), "BTC", "EUR", RATES) == Decimal("60185.19")


def test_the_same_currency_needs_no_rate() -> None:
    assert convert(Decimal("5"), "ETH", "ETH", {}) == Decimal("5")


def test_a_missing_rate_is_named() -> None:
    with pytest.raises(MissingReferenceRate, match="no reference rate for ETH"):
        convert(Decimal("1"), "ETH", "USD", RATES)


def test_only_supported_currencies_are_accepted() -> None:
    assert parse_currency("ETH") == "ETH"
    with pytest.raises(ValidationFailed, match="unsupported currency XYZ"):
        parse_currency("XYZ")


def test_demo_rates_are_usd_and_every_asset_quoted_in_it() -> None:
    rates = demo_rates()
    assert set(rates) == {"USD", "EUR", "BTC", "ETH"}
    assert rates["USD"] == 1
    assert all(rate > 0 for rate in rates.values())
