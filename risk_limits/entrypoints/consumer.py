"""The `settlement.events` entry point: turns each trade outcome into a command that
frees the credit its reservation still holds.

A message that can never be applied (another payload type, no RFQ id) raises
`InvalidMessage`, which the shared consumer dead-letters to
`settlement.events.dlq` before moving on.
"""

from __future__ import annotations

from otc.bus.consumer import Handler
from otc.bus.envelope import InvalidMessage, Message
from otc.contracts import events_pb2
from risk_limits.domain import commands
from risk_limits.service_layer import trade_outcomes
from risk_limits.service_layer.unit_of_work import Dependencies


def trade_outcome_command(message: Message) -> commands.RecordTradeOutcome:
    payload = message.payload
    if isinstance(payload, events_pb2.TradeSettled):
        failed, reason = False, ""
    elif isinstance(payload, events_pb2.SettlementFailed):
        failed, reason = True, payload.reason
    else:
        raise InvalidMessage(f"expected a TradeSettled or SettlementFailed, got {message.type}")
    if not payload.rfq_id:
        raise InvalidMessage(f"{message.type} without an rfq_id")
    return commands.RecordTradeOutcome(
        event_id=message.event_id,
        rfq_id=payload.rfq_id,
        trade_id=payload.trade_id,
        failed=failed,
        reason=reason,
    )


def settlement_events_handler(deps: Dependencies) -> Handler:
    async def handle(_topic: str, message: Message) -> None:
        await trade_outcomes.record_trade_outcome(trade_outcome_command(message), deps)

    return handle
