"""What the runtime refuses before a quote is stored, whoever priced it (an
in-process strategy or a bot): a malformed quote, a quote on the maker's own RFQ,
a price outside the fat-finger band around the reference mid, a block too large."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from quoting_service.strategy import BPS, MarketView, Quote, RfqView, quote_problem


@dataclass(frozen=True, slots=True)
class Refusal:
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Guards:
    band_bps: Decimal  # how far from the reference mid a price may be
    max_block_notional: Decimal  # in the instrument's quote currency

    def check(self, maker: str, rfq: RfqView, quote: Quote, market: MarketView) -> Refusal | None:
        """Why the quote must not be stored, or None when it may."""
        problem = quote_problem(rfq, quote)
        if problem is not None:
            return Refusal("invalid_quote", problem)
        # an anonymous RFQ hides its requester here; order_core refuses that case
        if rfq.requester == maker:
            return Refusal("self_trade", "a party cannot quote on its own RFQ")
        if market.mid is None:
            return Refusal("no_reference_price", f"no reference price for {rfq.instrument.symbol}")
        prices = [p for p in (quote.bid_px, quote.offer_px) if p is not None]
        for name, price in (("bid", quote.bid_px), ("offer", quote.offer_px)):
            if price is None:
                continue
            off_bps = abs(price - market.mid) / market.mid * BPS
            if off_bps > self.band_bps:
                return Refusal(
                    "price_band",
                    f"{name} {price} is {off_bps:.0f} bps from the reference {market.mid}, "
                    f"outside the {self.band_bps} bps band",
                )
        notional = rfq.quantity * max(prices)
        if notional > self.max_block_notional:
            return Refusal(
                "block_size",
                f"notional {notional:.2f} exceeds the maximum block of {self.max_block_notional}",
            )
        return None
