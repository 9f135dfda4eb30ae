"""A spread that widens with the notional asked for, and a size it will not quote.

For a maker whose hedging cost grows with size: a block that takes longer to lay
off carries more market risk, so it is priced wider, and beyond the last tier the
maker declines rather than guess.
"""

from __future__ import annotations

from decimal import Decimal

from quoting_service.strategy import BPS, MarketView, Quote, RfqView, Strategy, StrategyConfig

# (notional up to, in the quote currency; spread in bps), ascending
DEFAULT_TIERS: tuple[tuple[Decimal, Decimal], ...] = (
    (Decimal(1_000_000), Decimal(6)),
    (Decimal(10_000_000), Decimal(12)),
    (Decimal(50_000_000), Decimal(25)),
)


class TieredSpread(Strategy):
    def __init__(
        self,
        config: StrategyConfig,
        *,
        tiers: tuple[tuple[Decimal, Decimal], ...] = DEFAULT_TIERS,
    ) -> None:
        super().__init__(config)
        if not tiers or list(tiers) != sorted(tiers):
            raise ValueError("tiers must be non-empty and ascending by notional")
        self.tiers = tiers

    def spread_bps(self, notional: Decimal) -> Decimal | None:
        """The spread for this notional, or None when it is beyond the last tier."""
        for limit, spread in self.tiers:
            if notional <= limit:
                return spread
        return None

    def quote(self, rfq: RfqView, market: MarketView) -> Quote | None:
        if market.mid is None:
            return None
        spread = self.spread_bps(rfq.quantity * market.mid)
        if spread is None:
            return None
        half = market.mid * spread / BPS / 2
        return self.priced(rfq, bid=market.mid - half, offer=market.mid + half)
