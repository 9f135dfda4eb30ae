"""What callers ask the credit service, as frozen messages independent of gRPC.

Amounts stay the caller's text here; the handlers validate them through the
domain, so that every malformed request is refused by the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class LegRequest:
    party: str
    counterparty: str
    amount: str
    currency: str


@dataclass(frozen=True, slots=True)
class Freeze:
    reservation_id: str
    rfq_id: str
    legs: tuple[LegRequest, ...]
    deadline: datetime | None


@dataclass(frozen=True, slots=True)
class Commit:
    reservation_id: str


@dataclass(frozen=True, slots=True)
class Release:
    reservation_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class SetCreditLine:
    party: str
    currency: str
    limit: str
    counterparty: str = ""  # empty: the party's gross line


@dataclass(frozen=True, slots=True)
class GetExposure:
    party: str
    counterparty: str = ""


@dataclass(frozen=True, slots=True)
class SetReferenceRate:
    currency: str
    rate_in_usd: str


@dataclass(frozen=True, slots=True)
class SettleReservation:
    """An operator's word that the trade behind a reservation settled (or failed to)."""

    reservation_id: str
    failed: bool
    reason: str


@dataclass(frozen=True, slots=True)
class RecordTradeOutcome:
    """Settlement's event about a trade, which names the RFQ and not the reservation."""

    event_id: str
    rfq_id: str
    trade_id: str
    failed: bool
    reason: str


@dataclass(frozen=True, slots=True)
class GetReservation:
    reservation_id: str


@dataclass(frozen=True, slots=True)
class ListFrozen:
    created_before: datetime
    after: str
    limit: int
