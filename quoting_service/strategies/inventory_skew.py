"""A spread around a mid shifted against the maker's own inventory.

For a maker who wants to stay flat: long inventory lowers both prices (a cheaper
offer invites buyers, a lower bid discourages more sellers), short inventory raises
them. The inventory is this process's running sum of confirmed trades, starting
from zero; a production maker would load its positions from its books instead.
"""

from __future__ import annotations

from decimal import Decimal

from quoting_service.strategy import (
    BPS,
    Confirm,
    MarketView,
    Quote,
    Reject,
    RfqView,
    Side,
    Strategy,
    StrategyConfig,
    TradeView,
)

MILLION = Decimal(1_000_000)


class InventorySkew(Strategy):
    def __init__(
        self,
        config: StrategyConfig,
        *,
        spread_bps: Decimal = Decimal(8),
        skew_bps_per_million: Decimal = Decimal(2),
        max_skew_bps: Decimal = Decimal(40),
    ) -> None:
        super().__init__(config)
        self.spread_bps = spread_bps
        self.skew_bps_per_million = skew_bps_per_million
        self.max_skew_bps = max_skew_bps
        self.inventory: dict[str, Decimal] = {}  # instrument -> base units held (short < 0)

    def skew_bps(self, instrument: str, mid: Decimal) -> Decimal:
        """How far the mid is shifted down (negative: up), capped both ways."""
        notional = self.inventory.get(instrument, Decimal(0)) * mid
        skew = notional / MILLION * self.skew_bps_per_million
        return max(-self.max_skew_bps, min(self.max_skew_bps, skew))

    def quote(self, rfq: RfqView, market: MarketView) -> Quote | None:
        if market.mid is None:
            return None
        symbol = rfq.instrument.symbol
        mid = market.mid * (1 - self.skew_bps(symbol, market.mid) / BPS)
        half = mid * self.spread_bps / BPS / 2
        return self.priced(rfq, bid=mid - half, offer=mid + half)

    def last_look(self, trade: TradeView, market: MarketView) -> Confirm | Reject:
        decision = super().last_look(trade, market)
        if isinstance(decision, Confirm):
            signed = trade.quantity if trade.maker_side is Side.BUY else -trade.quantity
            symbol = trade.instrument.symbol
            self.inventory[symbol] = self.inventory.get(symbol, Decimal(0)) + signed
        return decision
