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
    lot: Decimal = Decimal("0.00000001")  # quantity increment
    min_quantity: Decimal = Decimal("0.00000001")  # below this it is not a block trade
    max_quantity: Decimal = Decimal("1000000000")  # refused before any maker sees it
    settlement_days: int = 0  # T+n: settlement days from trade date to value date


INSTRUMENTS: dict[str, Instrument] = {
    i.symbol: i
    for i in (
        Instrument(
            "BTC-USD",
            "BTC",
            "USD",
            tick=Decimal("0.01"),
            reference_mid=Decimal("65000"),
            lot=Decimal("0.0001"),
            min_quantity=Decimal("0.01"),
            max_quantity=Decimal("1000"),
        ),
        Instrument(
            "ETH-USD",
            "ETH",
            "USD",
            tick=Decimal("0.01"),
            reference_mid=Decimal("3200"),
            lot=Decimal("0.001"),
            min_quantity=Decimal("0.1"),
            max_quantity=Decimal("20000"),
        ),
        Instrument(
            "EUR-USD",
            "EUR",
            "USD",
            tick=Decimal("0.00001"),
            reference_mid=Decimal("1.08"),
            lot=Decimal("1"),
            min_quantity=Decimal("1000"),
            max_quantity=Decimal("100000000"),
        ),
    )
}
