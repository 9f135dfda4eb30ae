"""What order_core does with each command: plain functions registered by command
class, each idempotent on the command's event_id."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from order_core.service_layer import commands as c
from order_core.service_layer.accepting import on_accept_quote
from order_core.service_layer.confirming import (
    on_last_look_response,
    on_settlement_failed,
    on_trade_settled,
)
from order_core.service_layer.dependencies import Dependencies
from order_core.service_layer.end_of_day import on_expire_open_rfqs
from order_core.service_layer.rfqs import (
    on_cancel,
    on_quote_submitted,
    on_quote_withdrawn,
    on_rfq_requested,
)

# Keyed by command class; each handler takes commands of its own class.
HANDLERS: dict[type[c.Command], Callable[[Dependencies, Any], Awaitable[None]]] = {
    c.RfqRequested: on_rfq_requested,
    c.QuoteSubmitted: on_quote_submitted,
    c.QuoteWithdrawn: on_quote_withdrawn,
    c.AcceptQuote: on_accept_quote,
    c.CancelRfq: on_cancel,
    c.LastLookResponse: on_last_look_response,
    c.TradeSettled: on_trade_settled,
    c.SettlementFailed: on_settlement_failed,
    c.ExpireOpenRfqs: on_expire_open_rfqs,
}


async def handle(deps: Dependencies, command: c.Command) -> None:
    await HANDLERS[type(command)](deps, command)
