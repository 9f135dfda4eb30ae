"""The strategy SDK and the three demo strategies, without any server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from otc.instruments import Instrument
from quoting_service.strategies.fixed_spread import FixedSpread
from quoting_service.strategies.inventory_skew import InventorySkew
from quoting_service.strategies.tiered_spread import TieredSpread
from quoting_service.strategy import (
    Confirm,
    MarketView,
    Quote,
    Reject,
    RfqView,
    Side,
    Strategy,
    StrategyConfig,
    TradeView,
    quote_problem,
)

NOW = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
CONFIG = StrategyConfig(quote_ttl=timedelta(seconds=10), last_look_tolerance_bps=Decimal(50))
# a coarse tick makes rounding visible: 10 bps of 100 is 0.1, well inside one tick
COARSE = Instrument("TEST-USD", "TEST", "USD", Decimal("0.25"), Decimal(100))
FINE = Instrument("FINE-USD", "FINE", "USD", Decimal("0.01"), Decimal(100))
DEMO_STRATEGIES: list[type[Strategy]] = [FixedSpread, TieredSpread, InventorySkew]


def rfq(side: Side = Side.TWO_WAY, quantity: str = "1", instrument: Instrument = FINE) -> RfqView:
    return RfqView(
        rfq_id="rfq-1",
        instrument=instrument,
        side=side,
        quantity=Decimal(quantity),
        expires_at=NOW + timedelta(seconds=30),
        requester="TRADER-A",
    )


def market(mid: str | None, instrument: Instrument = FINE) -> MarketView:
    if mid is None:
        return MarketView(instrument, None, None)
    return MarketView(instrument, Decimal(mid), NOW)


def trade(maker_side: Side, price: str, quantity: str = "2") -> TradeView:
    return TradeView("rfq-1", "quote-1", FINE, maker_side, Decimal(quantity), Decimal(price))


@pytest.mark.parametrize(
    ("side", "has_bid", "has_offer"),
    [(Side.BUY, False, True), (Side.SELL, True, False), (Side.TWO_WAY, True, True)],
)
@pytest.mark.parametrize("kind", DEMO_STRATEGIES)
def test_each_strategy_quotes_only_the_sides_the_rfq_asks_for(
    kind: type[Strategy], side: Side, has_bid: bool, has_offer: bool
) -> None:
    quote = kind(CONFIG).quote(rfq(side), market("100"))
    assert quote is not None
    assert (quote.bid_px is not None, quote.offer_px is not None) == (has_bid, has_offer)
    assert quote_problem(rfq(side), quote) is None


@pytest.mark.parametrize("kind", DEMO_STRATEGIES)
def test_no_mid_means_no_quote(kind: type[Strategy]) -> None:
    assert kind(CONFIG).quote(rfq(), market(None)) is None


def test_fixed_spread_is_symmetric_around_the_mid() -> None:
    quote = FixedSpread(CONFIG, spread_bps=Decimal(20)).quote(rfq(), market("100"))
    assert quote == Quote(Decimal("99.90"), Decimal("100.10"), timedelta(seconds=10))


def test_prices_round_to_the_tick_away_from_the_maker() -> None:
    quote = FixedSpread(CONFIG, spread_bps=Decimal(20)).quote(rfq(instrument=COARSE), market("100"))
    assert quote is not None
    assert quote.bid_px == Decimal("99.75")  # 99.90 rounded down
    assert quote.offer_px == Decimal("100.25")  # 100.10 rounded up


def test_a_price_already_on_the_tick_is_not_moved() -> None:
    quote = FixedSpread(CONFIG, spread_bps=Decimal(50)).quote(rfq(instrument=COARSE), market("100"))
    assert quote is not None
    assert (quote.bid_px, quote.offer_px) == (Decimal("99.75"), Decimal("100.25"))


def test_tiered_spread_widens_with_notional_and_declines_beyond_the_last_tier() -> None:
    tiers = ((Decimal(1_000), Decimal(10)), (Decimal(10_000), Decimal(40)))
    strategy = TieredSpread(CONFIG, tiers=tiers)
    small = strategy.quote(rfq(quantity="10"), market("100"))  # notional 1,000
    large = strategy.quote(rfq(quantity="10.01"), market("100"))  # just over
    assert small is not None
    assert large is not None
    assert (small.bid_px, small.offer_px) == (Decimal("99.95"), Decimal("100.05"))
    assert (large.bid_px, large.offer_px) == (Decimal("99.80"), Decimal("100.20"))
    assert strategy.quote(rfq(quantity="100.01"), market("100")) is None


def test_tiered_spread_refuses_unordered_tiers() -> None:
    with pytest.raises(ValueError, match="ascending"):
        TieredSpread(CONFIG, tiers=((Decimal(10), Decimal(1)), (Decimal(5), Decimal(2))))


def test_inventory_skew_lowers_prices_when_long_and_raises_them_when_short() -> None:
    flat = InventorySkew(CONFIG).quote(rfq(), market("100"))
    long, short = InventorySkew(CONFIG), InventorySkew(CONFIG)
    assert long.last_look(trade(Side.BUY, "100", quantity="20000"), market("100")) == Confirm()
    assert short.last_look(trade(Side.SELL, "100", quantity="20000"), market("100")) == Confirm()
    long_quote, short_quote = long.quote(rfq(), market("100")), short.quote(rfq(), market("100"))
    assert flat is not None
    assert long_quote is not None
    assert short_quote is not None
    assert long.inventory == {"FINE-USD": Decimal(20000)}
    assert short.inventory == {"FINE-USD": Decimal(-20000)}
    assert long_quote.offer_px is not None
    assert flat.offer_px is not None
    assert short_quote.offer_px is not None
    assert long_quote.offer_px < flat.offer_px < short_quote.offer_px


def test_inventory_skew_is_capped() -> None:
    strategy = InventorySkew(CONFIG, max_skew_bps=Decimal(5))
    strategy.inventory["FINE-USD"] = Decimal(10**9)
    assert strategy.skew_bps("FINE-USD", Decimal(100)) == Decimal(5)


def test_inventory_skew_ignores_rejected_trades() -> None:
    strategy = InventorySkew(CONFIG)
    decision = strategy.last_look(trade(Side.SELL, "100"), market("101"))
    assert isinstance(decision, Reject)
    assert strategy.inventory == {}


@pytest.mark.parametrize(
    ("maker_side", "price", "mid", "confirmed"),
    [
        (Side.SELL, "100", "100.49", True),  # mid rose 49 bps: inside the tolerance
        (Side.SELL, "100", "100.51", False),  # rose 51 bps: the maker would sell too cheap
        (Side.SELL, "100", "90", True),  # fell: in the maker's favour
        (Side.BUY, "100", "99.51", True),
        (Side.BUY, "100", "99.49", False),  # fell 51 bps: the maker would buy too dear
        (Side.BUY, "100", "110", True),
    ],
)
def test_default_last_look_rejects_only_an_adverse_move_beyond_the_tolerance(
    maker_side: Side, price: str, mid: str, confirmed: bool
) -> None:
    decision = FixedSpread(CONFIG).last_look(trade(maker_side, price), market(mid))
    assert isinstance(decision, Confirm) is confirmed
    if not confirmed:
        assert isinstance(decision, Reject)
        assert "bps against the quote" in decision.reason


def test_last_look_without_a_mid_rejects() -> None:
    decision = FixedSpread(CONFIG).last_look(trade(Side.SELL, "100"), market(None))
    assert isinstance(decision, Reject)


@pytest.mark.parametrize(
    ("side", "quote", "problem"),
    [
        (Side.BUY, Quote(Decimal("99"), Decimal("101"), timedelta(seconds=1)), "takes no bid"),
        (Side.SELL, Quote(None, None, timedelta(seconds=1)), "needs bid"),
        (Side.BUY, Quote(None, Decimal("101.001"), timedelta(seconds=1)), "multiple of the tick"),
        (Side.SELL, Quote(Decimal("0"), None, timedelta(seconds=1)), "positive"),
        (Side.TWO_WAY, Quote(Decimal("101"), Decimal("101"), timedelta(seconds=1)), "not below"),
        (Side.BUY, Quote(None, Decimal("101"), timedelta(0)), "valid_for"),
    ],
)
def test_quote_problem_names_what_is_wrong(side: Side, quote: Quote, problem: str) -> None:
    found = quote_problem(rfq(side), quote)
    assert found is not None
    assert problem in found


def test_a_bid_that_rounds_to_nothing_is_no_quote() -> None:
    tiny = Instrument("TINY-USD", "TINY", "USD", Decimal("1"), Decimal(1))
    strategy = FixedSpread(CONFIG, spread_bps=Decimal(10))
    assert strategy.quote(rfq(Side.SELL, instrument=tiny), market("1", tiny)) is None
