"""A constant spread around the reference mid, whatever the size.

The simplest maker there is: for liquid instruments and modest sizes, where the
risk of holding the position is small enough to be covered by one fixed margin.
"""

from __future__ import annotations

from decimal import Decimal

from quoting_service.strategy import BPS, MarketView, Quote, RfqView, Strategy, StrategyConfig


class FixedSpread(Strategy):
    def __init__(self, config: StrategyConfig, *, spread_bps: Decimal = Decimal(10)) -> None:
        super().__init__(config)
        self.spread_bps = spread_bps

    def quote(self, rfq: RfqView, market: MarketView) -> Quote | None:
        if market.mid is None:
            return None
        half = market.mid * self.spread_bps / BPS / 2
        return self.priced(rfq, bid=market.mid - half, offer=market.mid + half)
