"""The `trade.confirmed` entry point: turns each message into a `BookTrade` command.

A message that can never be booked (wrong payload type, bad decimals, unknown
instrument, notional that is not quantity x price) raises `InvalidMessage`, which
the shared consumer dead-letters to `trade.confirmed.dlq` and then moves on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC

from otc.bus.consumer import Handler
from otc.bus.envelope import InvalidMessage, Message
from otc.contracts import events_pb2
from settlement.domain.commands import BookTrade
from settlement.domain.ledger import InvalidTrade, parse_trade


def book_trade_command(message: Message) -> BookTrade:
    payload = message.payload
    if not isinstance(payload, events_pb2.TradeConfirmed):
        raise InvalidMessage(f"expected a TradeConfirmed, got {message.type}")
    try:
        trade = parse_trade(
            trade_id=payload.trade_id,
            rfq_id=payload.rfq_id,
            instrument=payload.instrument,
            buyer=payload.buyer,
            seller=payload.seller,
            quantity=payload.quantity,
            price=payload.price,
            notional=payload.notional,
        )
    except InvalidTrade as exc:
        raise InvalidMessage(f"invalid TradeConfirmed: {exc}") from None
    confirmed_at = (
        payload.confirmed_at.ToDatetime(tzinfo=UTC)
        if payload.HasField("confirmed_at")
        else message.occurred_at
    )
    return BookTrade(
        trade=trade,
        confirmed_at=confirmed_at,
        event_id=message.event_id,
        correlation_id=message.correlation_id,
    )


def trade_confirmed_handler(book: Callable[[BookTrade], Awaitable[object]]) -> Handler:
    async def handle(_topic: str, message: Message) -> None:
        await book(book_trade_command(message))

    return handle
