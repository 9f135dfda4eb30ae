"""The Kafka topics of docs/design.md; every topic has a `.dlq` twin."""

from __future__ import annotations

RFQ_REQUESTS = "rfq.requests"
RFQ_QUOTES = "rfq.quotes"
ORDER_COMMANDS = "order.commands"
ORDER_EVENTS = "order.events"
LASTLOOK_REQUESTS = "lastlook.requests"
LASTLOOK_RESPONSES = "lastlook.responses"
TRADE_CONFIRMED = "trade.confirmed"
SETTLEMENT_EVENTS = "settlement.events"
MARKET_PRICES = "market.prices"
AUDIT_CHECKPOINTS = "audit.checkpoints"

MAIN_TOPICS: tuple[str, ...] = (
    RFQ_REQUESTS,
    RFQ_QUOTES,
    ORDER_COMMANDS,
    ORDER_EVENTS,
    LASTLOOK_REQUESTS,
    LASTLOOK_RESPONSES,
    TRADE_CONFIRMED,
    SETTLEMENT_EVENTS,
    MARKET_PRICES,
    AUDIT_CHECKPOINTS,
)


def dlq(topic: str) -> str:
    return f"{topic}.dlq"


ALL_TOPICS: tuple[str, ...] = MAIN_TOPICS + tuple(dlq(t) for t in MAIN_TOPICS)
