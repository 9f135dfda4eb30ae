"""The order (one per RFQ) and its quotes: pure data plus the rules that read them.

State changes only through `apply`, which asks the state machine; the version is
the optimistic-concurrency token the repository checks on save.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from order_core.domain.lifecycle import IllegalTransition, OrderEvent, OrderState, next_state
from otc.errors import Conflict
from otc.sides import Side


@dataclass(frozen=True, slots=True)
class Quote:
    quote_id: str
    rfq_id: str
    maker: str
    bid_px: Decimal | None
    offer_px: Decimal | None
    quantity: Decimal
    valid_until: datetime


class AcceptRefused(Conflict):
    """An accept that can never succeed as asked; `code` says why."""


@dataclass(frozen=True, slots=True)
class Fill:
    """What accepting a quote on a side means: who pays what to whom."""

    trader_side: Side  # BUY or SELL
    price: Decimal
    buyer: str
    seller: str


@dataclass(slots=True)
class Order:
    rfq_id: str
    requester: str
    instrument: str
    side: Side
    quantity: Decimal
    counterparties: tuple[str, ...]
    anonymous: bool
    rfq_expires_at: datetime
    created_at: datetime
    updated_at: datetime
    state: OrderState = OrderState.RFQ_SENT
    version: int = 1
    accepted_quote_id: str | None = None
    reservation_id: str | None = None
    trade_side: Side | None = None
    price: Decimal | None = None
    lastlook_deadline: datetime | None = None
    trade_id: str | None = None

    def apply(self, event: OrderEvent, now: datetime) -> OrderState:
        self.state = next_state(self.state, event, rfq_expires_at=self.rfq_expires_at, now=now)
        self.updated_at = now
        return self.state

    def check(self, event: OrderEvent, now: datetime) -> None:
        """Raises the `IllegalTransition` that `apply(event, now)` would, changing nothing."""
        next_state(self.state, event, rfq_expires_at=self.rfq_expires_at, now=now)

    def allows(self, event: OrderEvent, now: datetime) -> bool:
        try:
            self.check(event, now)
        except IllegalTransition:
            return False
        return True

    def pending_on(self, reservation_id: str) -> bool:
        """Whether this order waits on a last look for the credit `reservation_id` holds."""
        return (
            self.state is OrderState.PENDING_CONFIRMATION and self.reservation_id == reservation_id
        )

    def rfq_open(self, now: datetime) -> bool:
        return now < self.rfq_expires_at

    def fill_for(self, quote: Quote, requested_side: Side | None, now: datetime) -> Fill:
        """Checks that `quote` can be accepted on this order and prices the fill."""
        if quote.rfq_id != self.rfq_id:
            raise AcceptRefused("quote does not belong to this RFQ", code="unknown_quote")
        if now >= quote.valid_until:
            raise AcceptRefused("quote has expired", code="quote_expired")
        side = self.side if self.side is not Side.TWO_WAY else requested_side
        if side is None or side is Side.TWO_WAY:
            raise AcceptRefused(
                "a two-way RFQ needs side buy or sell on accept", code="side_required"
            )
        if self.side is not Side.TWO_WAY and requested_side not in (None, self.side):
            raise AcceptRefused(f"this RFQ is a {self.side.value} RFQ", code="wrong_side")
        price = quote.offer_px if side is Side.BUY else quote.bid_px
        if price is None:
            raise AcceptRefused(f"the quote has no price to {side.value} at", code="no_price")
        if side is Side.BUY:
            return Fill(side, price, buyer=self.requester, seller=quote.maker)
        return Fill(side, price, buyer=quote.maker, seller=self.requester)

    def begin_confirmation(
        self,
        *,
        quote: Quote,
        fill: Fill,
        reservation_id: str,
        lastlook_deadline: datetime,
        now: datetime,
    ) -> None:
        self.apply(OrderEvent.ACCEPT_QUOTE, now)
        self.accepted_quote_id = quote.quote_id
        self.reservation_id = reservation_id
        self.trade_side = fill.trader_side
        self.price = fill.price
        self.lastlook_deadline = lastlook_deadline

    def end_confirmation(self, event: OrderEvent, now: datetime) -> None:
        """Last look said no (or said nothing in time): the accept is undone."""
        self.apply(event, now)
        self.accepted_quote_id = None
        self.reservation_id = None
        self.trade_side = None
        self.price = None
        self.lastlook_deadline = None

    @property
    def notional(self) -> Decimal:
        if self.price is None:
            raise ValueError("no price before a quote is accepted")
        return self.quantity * self.price
