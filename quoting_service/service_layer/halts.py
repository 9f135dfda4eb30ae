"""Stopping a maker at once: every live quote withdrawn in one step, and no new one
stored until it is reset. What market-maker protection, the kill switch (CLI or
API) and an operator's reset all go through."""

from __future__ import annotations

from dataclasses import dataclass

from otc.bus.producer import Publisher
from otc.bus.topics import RFQ_QUOTES
from otc.clock import Clock, to_millis
from otc.ids import derived_id
from otc.logging import get_logger
from otc.quote_book import QuoteBook, StoredQuote
from quoting_service.adapters.contracts import quote_withdrawn
from quoting_service.adapters.protection import ProtectionWindow
from quoting_service.metrics import MAKERS_HALTED, QUOTES_WITHDRAWN

log = get_logger(__name__)


async def publish_withdrawal(
    publisher: Publisher,
    clock: Clock,
    quote: StoredQuote,
    reason: str,
    *,
    correlation_id: str = "",
    causation_id: str = "",
) -> None:
    """Tells order_core (and through it the trader) that a quote is gone. One event
    per quote id, whoever withdrew it: a repeat is dropped downstream."""
    await publisher.publish(
        RFQ_QUOTES,
        quote.rfq_id,
        quote_withdrawn(quote, reason, clock.now()),
        correlation_id=correlation_id or quote.rfq_id,
        causation_id=causation_id,
        event_id=derived_id("quote-withdrawn", quote.quote_id),
    )


async def halt(
    book: QuoteBook,
    publisher: Publisher,
    clock: Clock,
    maker: str,
    *,
    why: str,
    reason: str,
    causation_id: str = "",
) -> list[StoredQuote]:
    """Halts the maker and withdraws all its live quotes; returns them. `why` is a
    short label (protection, kill_switch), `reason` what traders and logs are told."""
    withdrawn = await book.withdraw_all(maker, halt=reason)
    for quote in withdrawn:
        await publish_withdrawal(publisher, clock, quote, reason, causation_id=causation_id)
    QUOTES_WITHDRAWN.labels(maker, why).inc(len(withdrawn))
    MAKERS_HALTED.labels(maker, why).inc()
    log.warning("maker halted", maker=maker, reason=reason, withdrawn=len(withdrawn))
    return withdrawn


async def reset(book: QuoteBook, window: ProtectionWindow, maker: str) -> bool:
    """Lets the maker quote again with a fresh protection window; False if it was
    not halted."""
    await window.clear(maker)
    was_halted = await book.resume(maker)
    log.warning("maker reset", maker=maker, was_halted=was_halted)
    return was_halted


@dataclass(frozen=True, slots=True)
class Controls:
    """The kill switch and its reset, as the CLI and the gateway's API offer them."""

    book: QuoteBook
    window: ProtectionWindow
    publisher: Publisher
    clock: Clock

    async def kill(self, maker: str, *, by: str) -> list[StoredQuote]:
        reason = f"kill switch ({by})"
        return await halt(
            self.book, self.publisher, self.clock, maker, why="kill_switch", reason=reason
        )

    async def reset(self, maker: str) -> bool:
        return await reset(self.book, self.window, maker)

    async def status(self, maker: str) -> tuple[str | None, int]:
        """Why the maker is halted (None if it is not) and how many quotes it has live."""
        live = await self.book.live(maker, to_millis(self.clock.now()))
        return await self.book.halted(maker), len(live)
