"""What order_core does with each message: plain functions registered by payload
type, each idempotent on the message's event_id."""

from __future__ import annotations

from order_core.service_layer.accepting import on_accept_quote
from order_core.service_layer.confirming import (
    on_last_look_response,
    on_settlement_failed,
    on_trade_settled,
)
from order_core.service_layer.context import Context, Handler
from order_core.service_layer.end_of_day import on_expire_open_rfqs
from order_core.service_layer.rfqs import (
    on_cancel,
    on_quote_submitted,
    on_quote_withdrawn,
    on_rfq_requested,
)

HANDLERS: dict[str, Handler] = {
    "otc.v1.RfqRequested": on_rfq_requested,
    "otc.v1.QuoteSubmitted": on_quote_submitted,
    "otc.v1.QuoteWithdrawn": on_quote_withdrawn,
    "otc.v1.AcceptQuote": on_accept_quote,
    "otc.v1.CancelRfq": on_cancel,
    "otc.v1.LastLookResponse": on_last_look_response,
    "otc.v1.TradeSettled": on_trade_settled,
    "otc.v1.SettlementFailed": on_settlement_failed,
    "otc.v1.ExpireOpenRfqs": on_expire_open_rfqs,
}

__all__ = ["HANDLERS", "Context"]
