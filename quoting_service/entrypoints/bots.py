"""Market makers' bots connected to this gateway: what each one is sent, and what
its messages do.

The messages and views themselves are in bot_protocol.py.

Every gateway replica reads every partition of `rfq.requests`, `lastlook.requests`
and `rfq.quotes` itself (no consumer group), so whichever replica a bot is
connected to delivers its RFQs and last looks. A bot is sent only what is its
own: RFQs addressed to its maker (never the requester of an anonymous one), last
looks on its maker's quotes, and its maker's withdrawals. Its messages go through
the maker's desk, the code path in-process strategies use, and it can act only on
RFQs delivered to it and on its maker's own quotes and last looks.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from otc.bus.envelope import InvalidMessage, Message
from otc.clock import Clock, to_millis
from otc.contracts import events_pb2
from otc.errors import DomainError, OtcError, RateLimited, TooManySessions
from otc.logging import get_logger
from otc.quote_book import StoredQuote
from quoting_service.adapters.contracts import LastLook, last_look, rfq_view
from quoting_service.entrypoints import bot_protocol as wire
from quoting_service.entrypoints.open_rfqs import OpenRfqs
from quoting_service.metrics import BOTS_CONNECTED
from quoting_service.service_layer.desk import Cause, MakerDesk, Refused
from quoting_service.strategy import Quote

log = get_logger(__name__)

QUEUE_LIMIT = 1000


class BotSession:
    """One bot's connection: its outgoing queue, the quotes it placed and the last
    looks it was sent and has not answered."""

    def __init__(
        self,
        desk: MakerDesk,
        rfqs: OpenRfqs,
        clock: Clock,
        *,
        cancel_on_disconnect: bool,
        default_valid_for: timedelta,
        limit: wire.MessageLimit,
    ) -> None:
        self.maker = desk.maker
        self._limit = limit
        self.refused_in_a_row = 0
        self._clock = clock
        self.desk = desk
        self.cancel_on_disconnect = cancel_on_disconnect
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_LIMIT)
        self.overflowed = False
        self._rfqs = rfqs
        self._default_valid_for = default_valid_for
        self._live: dict[tuple[str, str], int] = {}  # quotes it placed -> valid until (ms)
        self._last_looks: dict[str, LastLook] = {}

    def push(self, message: dict[str, Any]) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.overflowed = True  # the sender closes a bot too slow to keep up

    def offer_last_look(self, look: LastLook) -> None:
        now = self._clock.now()
        for reservation_id, pending in list(self._last_looks.items()):
            if pending.deadline is not None and pending.deadline <= now:
                del self._last_looks[reservation_id]  # never answered, and now too late
        self._last_looks[look.reservation_id] = look
        self.push({"type": "last_look", "data": wire.last_look_view(look)})

    async def handle(self, text: str) -> dict[str, Any] | None:
        """The answer to one message from the bot (None for a heartbeat). A bad
        message gets an error and changes nothing."""
        try:
            request = json.loads(text)
        except ValueError:
            request = text  # refused below, once it has been counted like any message
        if isinstance(request, dict) and request.get("type") == "heartbeat":
            return None
        request_id = request.get("request_id") if isinstance(request, dict) else None
        try:
            self._limit.buckets.charge(self.maker)
        except RateLimited as exc:
            self.refused_in_a_row += 1
            return wire.error(request_id, exc.code, exc.message, retry_after=exc.retry_after)
        self.refused_in_a_row = 0
        if request is text:
            return wire.error(None, "invalid_json", "message is not JSON")
        if not isinstance(request, dict):
            return wire.error(None, "invalid_request", "message must be a JSON object")
        kind = request.get("type")
        try:
            data = await self._dispatch(kind, request.get("data", {}))
        except ValidationError as exc:
            return wire.error(request_id, "invalid_request", wire.validation_message(exc))
        except OtcError as exc:
            return wire.error(request_id, exc.code, exc.message)
        return {"type": "response", "request_id": request_id, "data": data}

    async def _dispatch(self, kind: object, data: object) -> dict[str, Any]:
        if kind == "quote":
            return await self._quote(wire.QuoteData.model_validate(data))
        if kind == "replace":
            return await self._replace(wire.ReplaceData.model_validate(data))
        if kind == "withdraw":
            return await self._withdraw(wire.WithdrawData.model_validate(data))
        if kind == "last_look":
            return await self._last_look(wire.LastLookData.model_validate(data))
        raise DomainError(f"unknown message type {kind!r}", code="unknown_type")

    async def _quote(self, data: wire.QuoteData) -> dict[str, Any]:
        rfq = self._rfqs.get(data.rfq_id, self.maker)
        stored = await self.desk.quote(rfq, self._priced(data), Cause(rfq.rfq_id))
        self._remember(stored)
        return wire.quote_view(stored)

    async def _replace(self, data: wire.ReplaceData) -> dict[str, Any]:
        rfq = self._rfqs.get(data.rfq_id, self.maker)
        stored = await self.desk.replace(rfq, data.quote_id, self._priced(data), Cause(rfq.rfq_id))
        self._live.pop((rfq.rfq_id, data.quote_id), None)
        self._remember(stored)
        return wire.quote_view(stored) | {"replaces_quote_id": data.quote_id}

    async def _withdraw(self, data: wire.WithdrawData) -> dict[str, Any]:
        await self.desk.withdraw(data.rfq_id, data.quote_id, data.reason, Cause(data.rfq_id))
        self._live.pop((data.rfq_id, data.quote_id), None)
        return {"rfq_id": data.rfq_id, "quote_id": data.quote_id, "withdrawn": True}

    async def _last_look(self, data: wire.LastLookData) -> dict[str, Any]:
        look = self._last_looks.get(data.reservation_id)
        if look is None:
            raise Refused(
                f"no last look {data.reservation_id} awaits you", code="unknown_last_look"
            )
        price = None
        if data.confirm:
            if data.price is None:
                raise DomainError("a confirmation must repeat the price", code="invalid_request")
            price = wire.decimal_field(data.price, "price")
        try:
            await self.desk.answer_last_look(
                look,
                Cause(look.trade.rfq_id),
                confirmed=data.confirm,
                reason=data.reason,
                quote_id=data.quote_id,
                price=price,
            )
        except Refused:
            del self._last_looks[data.reservation_id]  # too late: it will not come back
            raise
        del self._last_looks[data.reservation_id]
        return {"reservation_id": data.reservation_id, "confirmed": data.confirm}

    def _remember(self, quote: StoredQuote) -> None:
        now_ms = to_millis(self._clock.now())
        for key, until_ms in list(self._live.items()):
            if until_ms <= now_ms:
                del self._live[key]  # expired: nothing to cancel any more
        self._live[(quote.rfq_id, quote.quote_id)] = quote.valid_until_ms

    def _priced(self, data: wire.QuoteData) -> Quote:
        valid_for = self._default_valid_for
        if data.valid_for_ms is not None:
            valid_for = timedelta(milliseconds=data.valid_for_ms)
        bid, offer = data.bid_px, data.offer_px
        return Quote(
            bid_px=None if bid is None else wire.decimal_field(bid, "bid_px"),
            offer_px=None if offer is None else wire.decimal_field(offer, "offer_px"),
            valid_for=valid_for,
        )

    async def cancel_quotes(self, reason: str) -> int:
        """Withdraws the quotes this bot placed that are still live."""
        withdrawn = 0
        for rfq_id, quote_id in sorted(self._live):
            try:
                await self.desk.withdraw(rfq_id, quote_id, reason, Cause(rfq_id))
                withdrawn += 1
            except Refused:
                pass  # taken, expired or already withdrawn: nothing to cancel
        self._live.clear()
        return withdrawn


class Bots:
    """The bots connected to this gateway, by maker, and the feed that fills them."""

    def __init__(
        self,
        desk_for: Callable[[str], MakerDesk],
        clock: Clock,
        default_valid_for: timedelta,
        limit: wire.MessageLimit,
        max_sessions: int = 50,
    ) -> None:
        self._desk_for = desk_for
        self._limit = limit
        self._max_sessions = max_sessions
        self._desks: dict[str, MakerDesk] = {}
        self._by_maker: dict[str, set[BotSession]] = defaultdict(set)
        self._default_valid_for = default_valid_for
        self._clock = clock
        self.rfqs = OpenRfqs(clock)

    @property
    def refusals_before_close(self) -> int:
        return self._limit.refusals_before_close

    def desk(self, maker: str) -> MakerDesk:
        desk = self._desks.get(maker)
        if desk is None:
            desk = self._desks[maker] = self._desk_for(maker)
        return desk

    def now(self) -> datetime:
        return self._clock.now()

    def connect(self, maker: str, *, cancel_on_disconnect: bool) -> BotSession:
        if len(self._by_maker.get(maker, ())) >= self._max_sessions:
            raise TooManySessions(f"{maker} already has {self._max_sessions} bots connected")
        session = BotSession(
            self.desk(maker),
            self.rfqs,
            self._clock,
            cancel_on_disconnect=cancel_on_disconnect,
            default_valid_for=self._default_valid_for,
            limit=self._limit,
        )
        self._by_maker[maker].add(session)
        BOTS_CONNECTED.labels(maker).inc()
        return session

    async def disconnect(self, session: BotSession, why: str) -> None:
        sessions = self._by_maker.get(session.maker)
        if sessions is not None:
            sessions.discard(session)
            if not sessions:
                del self._by_maker[session.maker]
        try:
            withdrawn = await session.cancel_quotes(why) if session.cancel_on_disconnect else 0
        finally:
            BOTS_CONNECTED.labels(session.maker).dec()
        log.info("bot disconnected", maker=session.maker, why=why, withdrawn=withdrawn)

    async def on_message(self, topic: str, message: Message) -> None:
        payload = message.payload
        try:
            if isinstance(payload, events_pb2.RfqRequested):
                self._rfq(payload)
            elif isinstance(payload, events_pb2.LastLookRequested):
                await self._last_look(payload, message)
            elif isinstance(payload, events_pb2.QuoteWithdrawn):
                for session in self._sessions(payload.maker):
                    session.push({"type": "quote_withdrawn", "data": wire.withdrawal_view(payload)})
        except InvalidMessage as exc:
            # not dead-lettered: every replica reads every record, and each would
            # file its own copy; the makers' own quoters dead-letter it once
            log.warning("message not delivered to bots", topic=topic, reason=str(exc))

    def _rfq(self, payload: events_pb2.RfqRequested) -> None:
        makers = frozenset(m for m in payload.counterparties if m in self._by_maker)
        if not makers:
            return
        rfq = rfq_view(payload)
        self.rfqs.add(rfq, makers)
        for maker in makers:
            for session in self._sessions(maker):
                session.push({"type": "rfq", "data": wire.rfq_for_bot(rfq)})

    async def _last_look(self, payload: events_pb2.LastLookRequested, message: Message) -> None:
        sessions = self._sessions(payload.maker)
        if not sessions:
            return
        look = last_look(payload)
        await self.desk(payload.maker).last_look_requested(
            look, Cause(message.correlation_id, message.event_id)
        )
        for session in sessions:
            session.offer_last_look(look)

    def _sessions(self, maker: str) -> tuple[BotSession, ...]:
        return tuple(self._by_maker.get(maker, ()))
