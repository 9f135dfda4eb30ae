"""The strategy SDK: what a market maker implements to price RFQs and answer last look.

A strategy is a plain class with no I/O: the quoting runtime hands it immutable
views of the RFQ, the trade and the market, and publishes what it returns. Makers
plug their own class in by its import path (`package.module:Class`), so everything
a strategy may rely on is defined here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from enum import StrEnum

from otc.instruments import Instrument
from otc.money import round_to_tick

BPS = Decimal(10_000)


class Side(StrEnum):
    """The trader's side of an RFQ; for a trade, what the maker does."""

    BUY = "buy"
    SELL = "sell"
    TWO_WAY = "two_way"

    @property
    def maker_bids(self) -> bool:
        """A trader who sells (or may sell) hits the maker's bid."""
        return self in (Side.SELL, Side.TWO_WAY)

    @property
    def maker_offers(self) -> bool:
        """A trader who buys (or may buy) pays the maker's offer."""
        return self in (Side.BUY, Side.TWO_WAY)


@dataclass(frozen=True, slots=True)
class RfqView:
    rfq_id: str
    instrument: Instrument
    side: Side
    quantity: Decimal
    expires_at: datetime
    requester: str | None  # None when the RFQ is anonymous


@dataclass(frozen=True, slots=True)
class MarketView:
    instrument: Instrument
    mid: Decimal | None  # None until the first reference price arrives
    at: datetime | None


@dataclass(frozen=True, slots=True)
class Quote:
    bid_px: Decimal | None
    offer_px: Decimal | None
    valid_for: timedelta


@dataclass(frozen=True, slots=True)
class TradeView:
    rfq_id: str
    quote_id: str
    instrument: Instrument
    maker_side: Side  # BUY or SELL: what the maker does if it confirms
    quantity: Decimal
    price: Decimal


@dataclass(frozen=True, slots=True)
class Confirm:
    pass


@dataclass(frozen=True, slots=True)
class Reject:
    reason: str


@dataclass(frozen=True, slots=True)
class StrategyConfig:
    quote_ttl: timedelta
    last_look_tolerance_bps: Decimal


def round_down(price: Decimal, tick: Decimal) -> Decimal:
    return round_to_tick(price, tick, ROUND_FLOOR)


def round_up(price: Decimal, tick: Decimal) -> Decimal:
    return round_to_tick(price, tick, ROUND_CEILING)


def quote_problem(rfq: RfqView, quote: Quote) -> str | None:
    """Why a quote must not be published, or None when it is sound.

    The runtime checks every quote, since a plug-in strategy is third-party code
    and a wrong side or an off-tick price must never reach a trader.
    """
    tick = rfq.instrument.tick
    if (quote.bid_px is not None) != rfq.side.maker_bids:
        return f"a {rfq.side} RFQ {'needs' if rfq.side.maker_bids else 'takes no'} bid"
    if (quote.offer_px is not None) != rfq.side.maker_offers:
        return f"a {rfq.side} RFQ {'needs' if rfq.side.maker_offers else 'takes no'} offer"
    for name, price in (("bid", quote.bid_px), ("offer", quote.offer_px)):
        if price is not None and (price <= 0 or price % tick != 0):
            return f"{name} {price} is not a positive multiple of the tick {tick}"
    if quote.bid_px is not None and quote.offer_px is not None and quote.bid_px >= quote.offer_px:
        return f"bid {quote.bid_px} is not below offer {quote.offer_px}"
    if quote.valid_for <= timedelta(0):
        return "valid_for must be positive"
    return None


class Strategy(ABC):
    """Base class of every pricing strategy. Subclasses implement `quote`; they may
    add keyword-only constructor parameters, as long as each has a default."""

    def __init__(self, config: StrategyConfig) -> None:
        self.config = config

    @abstractmethod
    def quote(self, rfq: RfqView, market: MarketView) -> Quote | None:
        """A quote for the RFQ, or None to decline it."""

    def last_look(self, trade: TradeView, market: MarketView) -> Confirm | Reject:
        """Confirms unless the mid moved against the maker by more than the tolerance.

        With no reference price the maker cannot tell whether the trade is stale,
        and last look exists to protect the maker, so it rejects.
        """
        if market.mid is None:
            return Reject("no reference price to check the trade against")
        adverse = trade.price - market.mid  # a maker who buys loses when the mid falls
        if trade.maker_side is Side.SELL:
            adverse = -adverse
        moved_bps = adverse / trade.price * BPS
        if moved_bps > self.config.last_look_tolerance_bps:
            return Reject(
                f"market moved {moved_bps:.1f} bps against the quote "
                f"(tolerance {self.config.last_look_tolerance_bps} bps)"
            )
        return Confirm()

    def priced(self, rfq: RfqView, *, bid: Decimal, offer: Decimal) -> Quote | None:
        """A quote on the sides the RFQ asks for, rounded away from the maker's loss
        (bid down, offer up); None if the bid would not be a positive price."""
        tick = rfq.instrument.tick
        bid_px = round_down(bid, tick) if rfq.side.maker_bids else None
        if bid_px is not None and bid_px <= 0:
            return None
        return Quote(
            bid_px=bid_px,
            offer_px=round_up(offer, tick) if rfq.side.maker_offers else None,
            valid_for=self.config.quote_ttl,
        )
