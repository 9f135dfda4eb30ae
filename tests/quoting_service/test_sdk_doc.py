"""The worked example of docs/market-maker-sdk.md is real code: it loads as a
strategy and prices as the document says."""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from otc.instruments import INSTRUMENTS
from quoting_service.bootstrap import load_strategy
from quoting_service.strategy import (
    Confirm,
    MarketView,
    Reject,
    RfqView,
    Side,
    StrategyConfig,
    TradeView,
    quote_problem,
)

DOC = Path(__file__).parents[2] / "docs" / "market-maker-sdk.md"
BTC = INSTRUMENTS["BTC-USD"]
CONFIG = StrategyConfig(quote_ttl=timedelta(seconds=10), last_look_tolerance_bps=Decimal(50))
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def example() -> Iterator[str]:
    """The example, importable as `my_desk.strategies` as the document runs it."""
    found = re.search(r"<!-- example-strategy -->\n```python\n(.*?)```", DOC.read_text(), re.S)
    assert found is not None, "the worked example is missing from the document"
    package, module = types.ModuleType("my_desk"), types.ModuleType("my_desk.strategies")
    exec(compile(found.group(1), str(DOC), "exec"), module.__dict__)  # noqa: S102
    sys.modules.update({"my_desk": package, "my_desk.strategies": module})
    yield "my_desk.strategies:CautiousSpread"
    del sys.modules["my_desk"], sys.modules["my_desk.strategies"]


def rfq(quantity: str) -> RfqView:
    return RfqView("rfq-1", BTC, Side.BUY, Decimal(quantity), NOW + timedelta(seconds=30), None)


def test_the_example_loads_and_quotes_as_documented(example: str) -> None:
    strategy = load_strategy(example)(CONFIG)
    market = MarketView(BTC, Decimal("65000"), NOW)
    quote = strategy.quote(rfq("2"), market)
    assert quote is not None
    assert (quote.bid_px, quote.offer_px) == (None, Decimal("65039.00"))
    assert quote_problem(rfq("2"), quote) is None
    assert strategy.quote(rfq("40"), market) is None  # 2,600,000 is over its size


def test_the_examples_last_look_rejects_what_it_would_no_longer_quote(example: str) -> None:
    strategy = load_strategy(example)(CONFIG)
    market = MarketView(BTC, Decimal("65000"), NOW)
    small = TradeView("rfq-1", "q-1", BTC, Side.SELL, Decimal("2"), Decimal("65039"))
    big = TradeView("rfq-1", "q-1", BTC, Side.SELL, Decimal("40"), Decimal("65039"))
    assert isinstance(strategy.last_look(small, market), Confirm)
    assert isinstance(strategy.last_look(big, market), Reject)
