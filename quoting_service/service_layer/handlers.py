"""The in-process runtime's message handlers: price an RFQ addressed to this maker
with its strategy, answer its last looks. Registered by payload type in `HANDLERS`;
other types are not ours. What the strategy returns goes through the maker's desk,
the same code path a bot's messages take.

Both are safe to run twice on one message. A quote's id is derived from the RFQ and
the maker, and a redelivered RFQ republishes the stored quote rather than pricing
it again; each published event's id is derived from what caused it, so downstream
consumers drop the duplicate.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from otc.bus.envelope import Message
from otc.clock import Clock
from otc.contracts import events_pb2
from otc.ids import derived_id
from otc.logging import get_logger
from quoting_service.adapters.contracts import last_look, payload_as, rfq_view
from quoting_service.metrics import QUOTE_SECONDS
from quoting_service.service_layer.desk import Cause, MakerDesk, Market, Refused
from quoting_service.strategy import Confirm, Strategy

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Deps:
    maker: str
    strategy: Strategy
    market: Market
    desk: MakerDesk
    clock: Clock


Handler = Callable[[Message, Deps], Awaitable[None]]


async def on_rfq_requested(message: Message, deps: Deps) -> None:
    received = time.perf_counter()
    rfq = payload_as(message, events_pb2.RfqRequested)
    if deps.maker not in rfq.counterparties:
        return
    view = rfq_view(rfq)
    if view.requester == deps.maker:
        log.info("own RFQ not quoted", rfq_id=view.rfq_id)
        return
    if view.expires_at <= deps.clock.now():
        log.info("expired RFQ not quoted", rfq_id=view.rfq_id)
        return
    quote = deps.strategy.quote(view, deps.market.view(view.instrument))
    if quote is None:
        log.info("strategy declined the RFQ", rfq_id=view.rfq_id)
        return
    cause = Cause(message.correlation_id, message.event_id)
    try:
        await deps.desk.quote(
            view, quote, cause, quote_id=derived_id("quote", view.rfq_id, deps.maker)
        )
    except Refused:
        return  # logged and counted by the desk
    QUOTE_SECONDS.labels(deps.maker).observe(time.perf_counter() - received)


async def on_last_look_requested(message: Message, deps: Deps) -> None:
    request = payload_as(message, events_pb2.LastLookRequested)
    if request.maker != deps.maker:
        return
    look = last_look(request)
    cause = Cause(message.correlation_id, message.event_id)
    await deps.desk.last_look_requested(look, cause)
    decision = deps.strategy.last_look(look.trade, deps.market.view(look.trade.instrument))
    try:
        await deps.desk.answer_last_look(
            look,
            cause,
            confirmed=isinstance(decision, Confirm),
            reason="" if isinstance(decision, Confirm) else decision.reason,
        )
    except Refused:
        return  # too late: logged and counted by the desk


HANDLERS: dict[str, Handler] = {
    events_pb2.RfqRequested.DESCRIPTOR.full_name: on_rfq_requested,
    events_pb2.LastLookRequested.DESCRIPTOR.full_name: on_last_look_requested,
}


async def dispatch(deps: Deps, topic: str, message: Message) -> None:
    handler = HANDLERS.get(message.type)
    if handler is None:
        log.debug("message type not handled here", type=message.type, topic=topic)
        return
    await handler(message, deps)
