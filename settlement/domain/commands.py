"""What settlement is asked to do: frozen messages handed from entry points to handlers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from settlement.domain.ledger import Trade


@dataclass(frozen=True, slots=True)
class BookTrade:
    trade: Trade
    confirmed_at: datetime  # when order_core confirmed it: the trade date
    event_id: str  # of the TradeConfirmed message: what makes a redelivery a no-op
    correlation_id: str
