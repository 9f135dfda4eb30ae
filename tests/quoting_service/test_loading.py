"""Loading a maker's strategy from its import path, with errors that say what is wrong."""

from __future__ import annotations

import pytest

from quoting_service.bootstrap import StrategyLoadError, load_strategy
from quoting_service.strategies.fixed_spread import FixedSpread
from quoting_service.strategy import Strategy


class NotAStrategy:
    pass


NOT_A_CLASS = 42


class Unfinished(Strategy):
    """Forgets to implement `quote`."""


def test_a_strategy_loads_by_its_import_path() -> None:
    assert load_strategy("quoting_service.strategies.fixed_spread:FixedSpread") is FixedSpread


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("quoting_service.strategies.fixed_spread.FixedSpread", "package.module:Class"),
        (":FixedSpread", "package.module:Class"),
        ("quoting_service.strategies.no_such_module:X", "cannot import"),
        ("quoting_service.strategies.fixed_spread:NoSuchClass", "has no 'NoSuchClass'"),
        (f"{__name__}:NotAStrategy", "not a subclass of Strategy"),
        (f"{__name__}:NOT_A_CLASS", "not a subclass of Strategy"),
        (f"{__name__}:Unfinished", "does not implement quote"),
    ],
)
def test_a_bad_strategy_path_is_refused_clearly(path: str, reason: str) -> None:
    with pytest.raises(StrategyLoadError, match=reason):
        load_strategy(path)
