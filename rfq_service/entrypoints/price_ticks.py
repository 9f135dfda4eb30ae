"""The edge's consumer of `market.prices`: keeps the board of latest mids that
traders' price subscriptions read from. A malformed tick goes to the dead-letter
topic like any other message."""

from __future__ import annotations

from datetime import UTC

from otc.bus.consumer import Handler
from otc.bus.envelope import InvalidMessage, Message
from otc.contracts import events_pb2 as ev
from otc.instruments import INSTRUMENTS
from otc.money import InvalidDecimal, parse_decimal
from rfq_service.service_layer.prices import PriceBoard


def price_ticks(board: PriceBoard) -> Handler:
    async def handle(topic: str, message: Message) -> None:
        tick = message.payload
        if not isinstance(tick, ev.PriceTick) or tick.instrument not in INSTRUMENTS:
            raise InvalidMessage(f"not a price tick of a known instrument: {message.type}")
        try:
            mid = parse_decimal(tick.mid, field="mid", positive=True)
        except InvalidDecimal as exc:
            raise InvalidMessage(str(exc)) from None
        at = tick.at.ToDatetime(tzinfo=UTC) if tick.HasField("at") else message.occurred_at
        board.on_tick(tick.instrument, mid, at)

    return handle
