"""The delivery-versus-payment rules, with no server: postings, balance, shortfalls."""

from __future__ import annotations

from decimal import Decimal

import pytest

from otc.instruments import INSTRUMENTS
from settlement.domain.ledger import (
    Account,
    InvalidTrade,
    Posting,
    Shortfall,
    Trade,
    dvp_postings,
    first_shortfall,
    parse_trade,
)


def btc_trade(
    quantity: str = "2.5", price: str = "65000.10", notional: str = "162500.250"
) -> Trade:
    return parse_trade(
        trade_id="T-1",
        rfq_id="R-1",
        instrument="BTC-USD",
        buyer="BUYER",
        seller="SELLER",
        quantity=quantity,
        price=price,
        notional=notional,
    )


def amounts(postings: tuple[Posting, ...]) -> dict[Account, Decimal]:
    return {p.account: p.amount for p in postings}


def test_postings_of_each_asset_sum_to_zero() -> None:
    postings = dvp_postings(btc_trade())
    by_asset: dict[str, Decimal] = {}
    for p in postings:
        by_asset[p.asset] = by_asset.get(p.asset, Decimal(0)) + p.amount
    assert by_asset == {"BTC": 0, "USD": 0}
    assert len(postings) == 4


def test_buyer_receives_base_and_pays_quote_seller_the_reverse() -> None:
    assert amounts(dvp_postings(btc_trade())) == {
        Account("BUYER", "BTC"): Decimal("2.5"),
        Account("SELLER", "BTC"): Decimal("-2.5"),
        Account("BUYER", "USD"): Decimal("-162500.250"),
        Account("SELLER", "USD"): Decimal("162500.250"),
    }


def test_assets_come_from_the_instrument() -> None:
    trade = parse_trade(
        trade_id="T-2",
        rfq_id="R-2",
        instrument="EUR-USD",
        buyer="BUYER",
        seller="SELLER",
        quantity="1000000",
        price="1.08123",
        notional="1081230",
    )
    assert {p.asset for p in dvp_postings(trade)} == {"EUR", "USD"}
    assert trade.instrument is INSTRUMENTS["EUR-USD"]


def test_notional_equal_in_value_but_not_in_digits_is_accepted() -> None:
    assert btc_trade(notional="162500.2500000").notional == Decimal("162500.25")


@pytest.mark.parametrize(
    ("quantity", "price", "notional"),
    [
        ("2.5", "65000.10", "162500.26"),  # off by one cent
        ("2.5", "65000.10", "162500"),  # truncated
        ("0.333333333333333333333333333333", "3", "1"),  # rounded product
    ],
)
def test_notional_that_is_not_quantity_times_price_is_refused(
    quantity: str, price: str, notional: str
) -> None:
    with pytest.raises(InvalidTrade, match="notional"):
        btc_trade(quantity, price, notional)


@pytest.mark.parametrize(
    ("quantity", "price", "notional", "field"),
    [
        ("abc", "1", "1", "quantity"),
        ("1", "NaN", "1", "price"),
        ("1", "1", "Infinity", "notional"),
        ("0", "1", "0", "quantity"),
        ("-1", "1", "-1", "quantity"),
        ("1", "", "1", "price"),
    ],
)
def test_bad_decimals_are_refused(quantity: str, price: str, notional: str, field: str) -> None:
    with pytest.raises(InvalidTrade, match=field):
        btc_trade(quantity, price, notional)


def test_unknown_instrument_is_refused() -> None:
    with pytest.raises(InvalidTrade, match="DOGE-USD"):
        parse_trade(
            trade_id="T-3",
            rfq_id="R-3",
            instrument="DOGE-USD",
            buyer="BUYER",
            seller="SELLER",
            quantity="1",
            price="1",
            notional="1",
        )


def test_a_party_cannot_trade_with_itself() -> None:
    with pytest.raises(InvalidTrade, match="itself"):
        Trade("T-4", "R-4", INSTRUMENTS["BTC-USD"], "SAME", "SAME", *[Decimal(1)] * 3)


def test_empty_ids_are_refused() -> None:
    with pytest.raises(InvalidTrade, match="trade_id"):
        Trade("", "R-5", INSTRUMENTS["BTC-USD"], "BUYER", "SELLER", *[Decimal(1)] * 3)


def test_postings_fit_when_both_sides_hold_exactly_enough() -> None:
    balances = {
        Account("SELLER", "BTC"): Decimal("2.5"),
        Account("BUYER", "USD"): Decimal("162500.25"),
    }
    assert first_shortfall(balances, dvp_postings(btc_trade())) is None


def test_shortfall_names_the_party_the_asset_and_the_amounts() -> None:
    balances = {
        Account("SELLER", "BTC"): Decimal("2.4"),
        Account("BUYER", "USD"): Decimal("1000000000"),
    }
    shortfall = first_shortfall(balances, dvp_postings(btc_trade()))
    assert shortfall == Shortfall("SELLER", "BTC", needed=Decimal("2.5"), available=Decimal("2.4"))
    assert "SELLER" in shortfall.describe()
    assert "BTC" in shortfall.describe()


def test_missing_balance_counts_as_zero() -> None:
    balances = {Account("SELLER", "BTC"): Decimal("100")}
    shortfall = first_shortfall(balances, dvp_postings(btc_trade()))
    assert shortfall == Shortfall("BUYER", "USD", Decimal("162500.250"), Decimal(0))


def test_first_shortfall_is_the_first_in_party_asset_order() -> None:
    shortfall = first_shortfall({}, dvp_postings(btc_trade()))
    assert shortfall is not None
    assert (shortfall.party, shortfall.asset) == ("BUYER", "USD")
