"""The quoter's message handlers: price an RFQ addressed to this maker, answer its
last looks. Registered by payload type in `HANDLERS`; other types are not ours.

Both are safe to run twice on one message. A quote's id is derived from the RFQ and
the maker, and a redelivered RFQ republishes the stored quote rather than pricing
it again; each published event's id is derived from what caused it, so downstream
consumers drop the duplicate.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from otc.bus.envelope import Message
from otc.bus.producer import Publisher
from otc.bus.topics import LASTLOOK_RESPONSES, RFQ_QUOTES
from otc.clock import Clock, to_millis
from otc.contracts import events_pb2
from otc.ids import derived_id
from otc.logging import get_logger
from otc.money import fmt
from otc.quote_book import PutOutcome, StoredQuote
from quoting_service.adapters.contracts import (
    deadline_of,
    payload_as,
    quote_submitted,
    rfq_view,
    trade_view,
)
from quoting_service.adapters.market_data import MarketData
from quoting_service.adapters.quotes import MakerQuotes
from quoting_service.metrics import LAST_LOOKS, QUOTE_SECONDS, QUOTES_SUBMITTED
from quoting_service.strategy import Confirm, RfqView, Strategy, quote_problem

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Deps:
    maker: str
    strategy: Strategy
    market: MarketData
    quotes: MakerQuotes
    publisher: Publisher
    clock: Clock


Handler = Callable[[Message, Deps], Awaitable[None]]


async def on_rfq_requested(message: Message, deps: Deps) -> None:
    received = time.perf_counter()
    rfq = payload_as(message, events_pb2.RfqRequested)
    if deps.maker not in rfq.counterparties:
        return
    if rfq.requester == deps.maker:
        log.info("own RFQ not quoted", rfq_id=rfq.rfq_id)
        return
    view = rfq_view(rfq)
    now = deps.clock.now()
    if view.expires_at <= now:
        log.info("expired RFQ not quoted", rfq_id=view.rfq_id)
        return
    quote_id = derived_id("quote", view.rfq_id, deps.maker)
    priced = _price(view, quote_id, deps, now)
    if priced is None:
        return
    # Put-if-absent: a redelivered RFQ republishes the quote already live (same id,
    # prices and event id) and never brings back one that was accepted.
    put = await deps.quotes.put(priced)
    if put.outcome is PutOutcome.TAKEN or put.quote is None:
        log.info("RFQ redelivered after its quote was taken", rfq_id=view.rfq_id)
        return
    stored = put.quote
    if put.outcome is PutOutcome.STORED:
        QUOTES_SUBMITTED.labels(deps.maker).inc()
    await deps.publisher.publish(
        RFQ_QUOTES,
        view.rfq_id,
        quote_submitted(stored),
        correlation_id=message.correlation_id,
        causation_id=message.event_id,
        event_id=derived_id("quote-submitted", stored.quote_id, str(stored.valid_until_ms)),
    )
    QUOTE_SECONDS.labels(deps.maker).observe(time.perf_counter() - received)
    log.info(
        "quote published",
        rfq_id=view.rfq_id,
        quote_id=quote_id,
        bid_px=stored.bid_px,
        offer_px=stored.offer_px,
        republished=put.outcome is PutOutcome.EXISTS,
    )


def _price(view: RfqView, quote_id: str, deps: Deps, now: datetime) -> StoredQuote | None:
    quote = deps.strategy.quote(view, deps.market.view(view.instrument))
    if quote is None:
        log.info("strategy declined the RFQ", rfq_id=view.rfq_id)
        return None
    problem = quote_problem(view, quote)
    if problem is not None:
        log.error("strategy quote refused", rfq_id=view.rfq_id, problem=problem)
        return None
    valid_for = min(quote.valid_for, deps.strategy.config.quote_ttl)
    return StoredQuote(
        rfq_id=view.rfq_id,
        quote_id=quote_id,
        maker=deps.maker,
        instrument=view.instrument.symbol,
        bid_px="" if quote.bid_px is None else fmt(quote.bid_px),
        offer_px="" if quote.offer_px is None else fmt(quote.offer_px),
        quantity=fmt(view.quantity),
        # whole milliseconds, so the Redis expiry and the published valid_until agree
        valid_until_ms=to_millis(min(now + valid_for, view.expires_at)),
    )


async def on_last_look_requested(message: Message, deps: Deps) -> None:
    request = payload_as(message, events_pb2.LastLookRequested)
    if request.maker != deps.maker:
        return
    trade = trade_view(request)
    deadline = deadline_of(request)
    if deadline is not None and deadline <= deps.clock.now():
        # the order core has already timed it out; a late confirm would only mislead
        log.warning("last look past its deadline not answered", rfq_id=trade.rfq_id)
        LAST_LOOKS.labels(deps.maker, "late").inc()
        return
    decision = deps.strategy.last_look(trade, deps.market.view(trade.instrument))
    confirmed = isinstance(decision, Confirm)
    reason = "" if isinstance(decision, Confirm) else decision.reason
    response = events_pb2.LastLookResponse(
        rfq_id=trade.rfq_id,
        quote_id=trade.quote_id,
        maker=deps.maker,
        reservation_id=request.reservation_id,
        confirmed=confirmed,
        reason=reason,
    )
    await deps.publisher.publish(
        LASTLOOK_RESPONSES,
        trade.rfq_id,
        response,
        correlation_id=message.correlation_id,
        causation_id=message.event_id,
        event_id=derived_id("last-look-response", message.event_id),
    )
    outcome = "confirmed" if confirmed else "rejected"
    LAST_LOOKS.labels(deps.maker, outcome).inc()
    log.info("last look answered", rfq_id=trade.rfq_id, outcome=outcome, reason=reason)


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
