"""The messages order_core acts on, as frozen typed values: the entrypoint builds one
from each envelope it consumes, and a handler takes one of these, never a protobuf.

Every message carries the envelope's `event_id` (the idempotency key, and for a
trader's command the id its answer names), `correlation_id` and `occurred_at`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from order_core.domain.order import Quote
from otc.sides import Side


@dataclass(frozen=True, slots=True, kw_only=True)
class Received:
    event_id: str
    correlation_id: str
    occurred_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class RfqRequested(Received):
    rfq_id: str
    requester: str
    instrument: str
    side: Side
    quantity: Decimal
    counterparties: tuple[str, ...]
    anonymous: bool
    expires_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class QuoteSubmitted(Received):
    quote: Quote
    replaces_quote_id: str
    # the maker's message as sent: the trader is shown it verbatim
    as_sent: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class QuoteWithdrawn(Received):
    rfq_id: str
    quote_id: str
    maker: str
    reason: str
    # the maker's message as sent: the trader is shown it with `reason` cleaned
    as_sent: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class AcceptQuote(Received):
    rfq_id: str
    quote_id: str
    trader: str
    side: Side | None  # required for a two-way RFQ

    @property
    def command_id(self) -> str:
        return self.event_id


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelRfq(Received):
    rfq_id: str
    trader: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LastLookResponse(Received):
    rfq_id: str
    quote_id: str
    maker: str
    reservation_id: str
    confirmed: bool
    reason: str
    price: str  # as the maker wrote it: a confirmation must repeat the accepted price


@dataclass(frozen=True, slots=True, kw_only=True)
class TradeSettled(Received):
    rfq_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SettlementFailed(Received):
    rfq_id: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpireOpenRfqs(Received):
    business_date: str
    close: datetime


Command = (
    RfqRequested
    | QuoteSubmitted
    | QuoteWithdrawn
    | AcceptQuote
    | CancelRfq
    | LastLookResponse
    | TradeSettled
    | SettlementFailed
    | ExpireOpenRfqs
)
