"""One maker's quoting desk: the single code path through which every quote,
replacement, withdrawal and last-look answer of that maker goes, whether an
in-process strategy or a bot on the WebSocket gateway produced it.

Each operation checks the guards, changes the shared quote book (one atomic
script) and only then publishes, so nothing is published that the book refused.
A refusal raises `Refused` with a machine-readable code; it is logged and counted
here, once, for every caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Protocol

from otc.bus.producer import Publisher
from otc.bus.topics import LASTLOOK_RESPONSES, RFQ_QUOTES
from otc.clock import Clock, to_millis
from otc.errors import Conflict
from otc.ids import derived_id, new_id
from otc.instruments import Instrument
from otc.logging import get_logger
from otc.money import fmt
from otc.quote_book import ChangeOutcome, ChangeResult, PutOutcome, QuoteBook, StoredQuote
from quoting_service.adapters.contracts import LastLook, last_look_response, quote_submitted
from quoting_service.adapters.protection import ProtectionWindow
from quoting_service.domain.guards import Guards
from quoting_service.domain.protection import ProtectionLimits
from quoting_service.metrics import LAST_LOOKS, QUOTES_REFUSED, QUOTES_SUBMITTED, QUOTES_WITHDRAWN
from quoting_service.service_layer import halts
from quoting_service.strategy import MarketView, Quote, RfqView

log = get_logger(__name__)


class Refused(Conflict):
    """A quote operation the desk will not do; `code` says why."""


class Market(Protocol):
    def view(self, instrument: Instrument) -> MarketView: ...


@dataclass(frozen=True, slots=True)
class Cause:
    """What the events an operation publishes are correlated with."""

    correlation_id: str
    causation_id: str = ""


@dataclass(frozen=True, slots=True)
class Protection:
    window: ProtectionWindow
    limits: ProtectionLimits


_PUT_REFUSALS = {
    PutOutcome.HALTED: ("halted", "quoting is halted until reset: {}"),
    PutOutcome.QUOTING: ("already_quoting", "quote {} is live on this RFQ: replace it instead"),
    PutOutcome.TAKEN: ("quote_taken", "this quote was accepted and cannot come back"),
    PutOutcome.GONE: ("quote_gone", "this quote is {} and cannot come back"),
}


class MakerDesk:
    def __init__(
        self,
        *,
        maker: str,
        book: QuoteBook,
        publisher: Publisher,
        market: Market,
        guards: Guards,
        protection: Protection,
        quote_ttl: timedelta,
        clock: Clock,
    ) -> None:
        self.maker = maker
        self._book = book
        self._publisher = publisher
        self._market = market
        self._guards = guards
        self._protection = protection
        self._quote_ttl = quote_ttl
        self._clock = clock

    async def quote(
        self, rfq: RfqView, quote: Quote, cause: Cause, *, quote_id: str | None = None
    ) -> StoredQuote:
        """Stores and publishes the maker's quote on the RFQ. The same live quote id
        again republishes the stored quote (a redelivered RFQ), nothing else."""
        stored = self._checked(rfq, quote, quote_id or new_id())
        put = await self._book.put(stored)
        if put.quote is None:
            code, message = _PUT_REFUSALS[put.outcome]
            raise self._refused(code, message.format(put.detail), rfq.rfq_id)
        if put.outcome is PutOutcome.STORED:
            QUOTES_SUBMITTED.labels(self.maker).inc()
        await self._publish_quote(put.quote, cause)
        log.info(
            "quote published",
            rfq_id=rfq.rfq_id,
            quote_id=put.quote.quote_id,
            bid_px=put.quote.bid_px,
            offer_px=put.quote.offer_px,
            republished=put.outcome is PutOutcome.EXISTS,
        )
        return put.quote

    async def replace(
        self, rfq: RfqView, old_quote_id: str, quote: Quote, cause: Cause
    ) -> StoredQuote:
        """Supersedes the maker's live quote with a new one, atomically: if the old
        one was accepted first, this is refused and nothing changes."""
        stored = self._checked(rfq, quote, new_id())
        result = await self._book.replace(old_quote_id, stored)
        if result.outcome is not ChangeOutcome.DONE:
            raise self._change_refused(result, rfq.rfq_id, old_quote_id)
        QUOTES_SUBMITTED.labels(self.maker).inc()
        await self._publish_quote(stored, cause, replaces=old_quote_id)
        log.info("quote replaced", rfq_id=rfq.rfq_id, old=old_quote_id, new=stored.quote_id)
        return stored

    async def withdraw(self, rfq_id: str, quote_id: str, reason: str, cause: Cause) -> StoredQuote:
        result = await self._book.withdraw(rfq_id, quote_id, self.maker)
        if result.outcome is not ChangeOutcome.DONE or result.quote is None:
            raise self._change_refused(result, rfq_id, quote_id)
        await halts.publish_withdrawal(
            self._publisher,
            self._clock,
            result.quote,
            reason,
            correlation_id=cause.correlation_id,
            causation_id=cause.causation_id,
        )
        QUOTES_WITHDRAWN.labels(self.maker, "maker").inc()
        log.info("quote withdrawn", rfq_id=rfq_id, quote_id=quote_id, reason=reason)
        return result.quote

    async def last_look_requested(self, look: LastLook, cause: Cause) -> None:
        """Counts the accept towards market-maker protection; past its limits, the
        maker's other quotes are withdrawn before this one is even answered."""
        trade, limits = look.trade, self._protection.limits
        accepted = await self._protection.window.record(
            self.maker,
            look.reservation_id,
            trade.quantity * trade.price,
            self._clock.now(),
            limits.window,
        )
        breach = limits.breach(accepted)
        if breach is not None and await self._book.halted(self.maker) is None:
            await halts.halt(
                self._book,
                self._publisher,
                self._clock,
                self.maker,
                why="protection",
                reason=f"market-maker protection: {breach}",
                causation_id=cause.causation_id,
            )

    async def answer_last_look(
        self,
        look: LastLook,
        cause: Cause,
        *,
        confirmed: bool,
        reason: str = "",
        quote_id: str | None = None,
        price: Decimal | None = None,
    ) -> None:
        """Publishes the maker's answer. A confirmation names the quote and price it
        confirms (the accepted ones unless given); order_core checks they match."""
        trade = look.trade
        if look.deadline is not None and look.deadline <= self._clock.now():
            LAST_LOOKS.labels(self.maker, "late").inc()
            # order_core has timed it out already; a late confirm would only mislead
            raise self._refused("too_late", "the last-look window has closed", trade.rfq_id)
        response = last_look_response(
            look,
            self.maker,
            confirmed=confirmed,
            reason="" if confirmed else reason or "rejected by the market maker",
            quote_id=quote_id or trade.quote_id,
            price=trade.price if price is None else price,
        )
        await self._publisher.publish(
            LASTLOOK_RESPONSES,
            trade.rfq_id,
            response,
            correlation_id=cause.correlation_id,
            causation_id=cause.causation_id,
            # one answer per accept: a second one (a bot changing its mind) is dropped
            event_id=derived_id("last-look-response", look.reservation_id),
        )
        outcome = "confirmed" if confirmed else "rejected"
        LAST_LOOKS.labels(self.maker, outcome).inc()
        log.info("last look answered", rfq_id=trade.rfq_id, outcome=outcome, reason=reason)

    def _checked(self, rfq: RfqView, quote: Quote, quote_id: str) -> StoredQuote:
        refusal = self._guards.check(self.maker, rfq, quote, self._market.view(rfq.instrument))
        if refusal is not None:
            raise self._refused(refusal.code, refusal.message, rfq.rfq_id)
        now = self._clock.now()
        valid_until = min(now + min(quote.valid_for, self._quote_ttl), rfq.expires_at)
        if valid_until <= now:
            raise self._refused("rfq_expired", "the RFQ's response window has closed", rfq.rfq_id)
        return StoredQuote(
            rfq_id=rfq.rfq_id,
            quote_id=quote_id,
            maker=self.maker,
            instrument=rfq.instrument.symbol,
            bid_px="" if quote.bid_px is None else fmt(quote.bid_px),
            offer_px="" if quote.offer_px is None else fmt(quote.offer_px),
            quantity=fmt(rfq.quantity),
            # whole milliseconds, so the Redis expiry and the published valid_until agree
            valid_until_ms=to_millis(valid_until),
        )

    async def _publish_quote(self, quote: StoredQuote, cause: Cause, replaces: str = "") -> None:
        await self._publisher.publish(
            RFQ_QUOTES,
            quote.rfq_id,
            quote_submitted(quote, replaces),
            correlation_id=cause.correlation_id,
            causation_id=cause.causation_id,
            event_id=derived_id("quote-submitted", quote.quote_id, str(quote.valid_until_ms)),
        )

    def _change_refused(self, result: ChangeResult, rfq_id: str, quote_id: str) -> Refused:
        if result.outcome is ChangeOutcome.HALTED:
            return self._refused(
                "halted", f"quoting is halted until reset: {result.detail}", rfq_id
            )
        if result.outcome is ChangeOutcome.NOT_LIVE and result.fate is not None:
            fate = result.fate.value
            return self._refused(f"quote_{fate}", f"quote {quote_id} is {fate}", rfq_id)
        return self._refused("not_found", f"no quote {quote_id} of yours on RFQ {rfq_id}", rfq_id)

    def _refused(self, code: str, message: str, rfq_id: str) -> Refused:
        QUOTES_REFUSED.labels(self.maker, code).inc()
        log.info("quote operation refused", rfq_id=rfq_id, code=code, reason=message)
        return Refused(message, code=code)
