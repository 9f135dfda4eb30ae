"""The end-of-day report: what the day moved per party and asset, the credit in
use, and every break with its cause; as JSON for machines and CSV for people.

The report is a function of the books alone: it carries no run time, so running
the batch again over the same books writes the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from otc.money import fmt
from settlement.domain.ledger import Account


@dataclass(frozen=True, slots=True)
class TradingDay:
    """A business day of the batch: the UTC calendar day [start, close)."""

    date: date

    @property
    def start(self) -> datetime:
        return datetime(self.date.year, self.date.month, self.date.day, tzinfo=UTC)

    @property
    def close(self) -> datetime:
        return self.start + timedelta(days=1)

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment < self.close


class Check(StrEnum):
    TRADE_BOOKED = "trade_booked"  # order_core confirmed it: settlement must have it
    TRADE_CONFIRMED = "trade_confirmed"  # settlement has it: order_core must have confirmed it
    TRADE_OUTCOME = "trade_outcome"  # both sides agree on how it ended
    ONE_OUTCOME = "one_outcome"  # one settlement or one failure, booked and announced once
    INSTRUCTION_DUE = "instruction_due"  # nothing due by the day is still waiting
    JOURNAL_BALANCED = "journal_balanced"  # postings sum to zero per asset
    JOURNAL_MATCHES_TRADE = "journal_matches_trade"  # exactly the trade's DvP postings
    BALANCE = "balance"  # balance = opening + the day's movements + later ones
    CREDIT_HELD = "credit_held"  # a trade waiting to settle holds its notional
    CREDIT_FREED = "credit_freed"  # credit in use belongs to a trade waiting to settle
    LINE_USED = "line_used"  # a line's used credit is what its reservations hold
    RFQ_OPEN = "rfq_open"  # no RFQ of the day is open after the close
    INVARIANT = "invariant"  # a platform invariant (stack.invariants) holds, whatever the day


@dataclass(frozen=True, slots=True)
class Break:
    check: Check
    subject: str  # what broke: "trade <id>", "journal 12 (trade <id>)", "account P BTC"
    cause: str
    party: str = ""
    asset: str = ""
    # may resolve by itself within seconds (a message on its way): worth a re-read
    in_flight: bool = field(default=False, compare=False)

    def as_dict(self) -> dict[str, str]:
        return {
            "check": self.check.value,
            "subject": self.subject,
            "party": self.party,
            "asset": self.asset,
            "cause": self.cause,
        }


@dataclass(frozen=True, slots=True)
class AccountFigures:
    """One account's movements by value date, and its kept balance."""

    account: Account
    opening: Decimal  # postings value-dated before the day
    trades: Decimal  # the day's trade postings
    funding: Decimal  # the day's deposits and withdrawals
    later: Decimal  # postings value-dated after the day
    stored: Decimal | None  # the balance row; None for `@external`, or when it is missing

    @property
    def closing(self) -> Decimal:
        return self.opening + self.trades + self.funding

    def as_dict(self) -> dict[str, str]:
        return {
            "party": self.account.party,
            "asset": self.account.asset,
            "opening": fmt(self.opening),
            "trades": fmt(self.trades),
            "funding": fmt(self.funding),
            "closing": fmt(self.closing),
        }


@dataclass(frozen=True, slots=True)
class ExposureFigure:
    party: str
    currency: str
    unsettled_notional: Decimal  # of its trades waiting to settle
    committed: Decimal  # what its committed reservations hold for them

    def as_dict(self) -> dict[str, str]:
        return {
            "party": self.party,
            "currency": self.currency,
            "unsettled_notional": fmt(self.unsettled_notional),
            "committed": fmt(self.committed),
        }


@dataclass(frozen=True, slots=True)
class Report:
    day: TradingDay
    summary: dict[str, int]
    totals: list[AccountFigures]
    exposure: list[ExposureFigure]
    breaks: list[Break]

    @property
    def ok(self) -> bool:
        return not self.breaks

    def with_breaks(self, more: Iterable[Break]) -> Report:
        """This report with `more` breaks, in the report's order, and counted."""
        breaks = sorted([*self.breaks, *more], key=lambda b: (b.check.value, b.subject, b.cause))
        return replace(self, breaks=breaks, summary={**self.summary, "breaks": len(breaks)})

    def as_dict(self) -> dict[str, Any]:
        return {
            "business_date": self.day.date.isoformat(),
            "window": {"start": _iso(self.day.start), "close": _iso(self.day.close)},
            "ok": self.ok,
            "summary": self.summary,
            "totals": [t.as_dict() for t in self.totals],
            "exposure": [e.as_dict() for e in self.exposure],
            "breaks": [b.as_dict() for b in self.breaks],
        }

    def csv_rows(self) -> list[list[str]]:
        """One table: a `total` row per party and asset, then a `break` row per break."""
        rows = [list(CSV_COLUMNS)]
        for t in self.totals:
            d = t.as_dict()
            rows.append(
                [
                    "total",
                    d["party"],
                    d["asset"],
                    d["opening"],
                    d["trades"],
                    d["funding"],
                    d["closing"],
                    "",
                    "",
                    "",
                ]
            )
        for b in self.breaks:
            rows.append(
                ["break", b.party, b.asset, "", "", "", "", b.check.value, b.subject, b.cause]
            )
        return rows


CSV_COLUMNS = (
    "row",
    "party",
    "asset",
    "opening",
    "trades",
    "funding",
    "closing",
    "check",
    "subject",
    "cause",
)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
