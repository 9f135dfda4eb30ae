"""Tradable instruments: what an RFQ may ask for and which assets settle."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class Instrument:
    symbol: str
    base: str  # the asset delivered
    quote: str  # the currency paid
    tick: Decimal  # price increment
    reference_mid: Decimal  # where the simulated feed starts


INSTRUMENTS: dict[str, Instrument] = {
    i.symbol: i
    for i in (
        Instrument("BTC-USD", "BTC", "USD", Decimal("0.01"), Decimal("65000")),
        Instrument("ETH-USD", "ETH", "USD", Decimal("0.01"), Decimal("3200")),
        Instrument("EUR-USD", "EUR", "USD", Decimal("0.00001"), Decimal("1.08")),
    )
}
