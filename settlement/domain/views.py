"""What each service's books say, as the end-of-day batch reads them: order_core's
trades and open RFQs, settlement's instructions and journals, risk_limits' credit in
use. Plain values, compared by `reconciliation`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from settlement.domain.eod_report import AccountFigures, TradingDay
from settlement.domain.ledger import JournalKind, Posting, Trade, TradeStatus


@dataclass(frozen=True, slots=True)
class OrderTrade:
    """A trade as order_core's audit trail tells it."""

    trade_id: str
    rfq_id: str
    state: str  # the order's latest state
    confirmed_at: datetime


@dataclass(frozen=True, slots=True)
class OpenRfq:
    rfq_id: str
    created_at: datetime
    state: str


@dataclass(frozen=True, slots=True)
class OrderView:
    trades: Mapping[str, OrderTrade]  # by trade id
    open_rfqs: list[OpenRfq]  # created on the day and still open


@dataclass(frozen=True, slots=True)
class BookedTrade:
    """A settlement instruction as settlement keeps it."""

    trade: Trade
    status: TradeStatus
    reason: str
    confirmed_at: datetime
    value_date: date
    attempts: int
    next_attempt_at: datetime | None
    settled_at: datetime | None


@dataclass(frozen=True, slots=True)
class JournalView:
    journal_id: int
    kind: JournalKind
    reference: str
    postings: tuple[Posting, ...]


@dataclass(frozen=True, slots=True)
class CreditLegView:
    party: str
    counterparty: str
    amount: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class CommittedView:
    reservation_id: str
    rfq_id: str
    legs: tuple[CreditLegView, ...]
    holds: tuple[CreditLegView, ...]
    committed_at: datetime


@dataclass(frozen=True, slots=True)
class LineView:
    party: str
    counterparty: str  # empty: the gross line
    currency: str
    used: Decimal


@dataclass(frozen=True, slots=True)
class CreditView:
    reservations: list[CommittedView]
    lines: list[LineView]


@dataclass(frozen=True, slots=True)
class Books:
    day: TradingDay
    now: datetime
    order: OrderView
    trades: list[BookedTrade]
    journals: list[JournalView]  # value-dated on the day
    journal_counts: Mapping[str, int]  # trade journals per trade id
    announced: Mapping[str, Counter[str]]  # outcomes announced per trade id
    accounts: list[AccountFigures]
    credit: CreditView
