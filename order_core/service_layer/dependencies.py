"""What order_core's handlers are given: the database, the quote book, the risk
client, the clock and the timings, built once by bootstrap (or a test); and how
long a message for an RFQ not yet on record is waited for."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from order_core.adapters.audited_uow import AuditedUnitOfWork
from order_core.adapters.repository import OrderQueries
from order_core.adapters.risk_client import RiskClient
from order_core.adapters.tables import OUTBOX_TABLES
from order_core.service_layer.commands import Received
from otc.bus.envelope import InvalidMessage
from otc.clock import Clock
from otc.errors import NotYetKnown
from otc.quote_book import QuoteBook

# A quote or command for an RFQ order_core has not seen may simply have overtaken
# the RfqRequested on the other topic; it is retried (holding up its partition) for
# at most this long from its first attempt in this process, then given up on. The
# clock starts at the first attempt, not at the message's age, because after a
# restart every waiting message is old and its RFQ is still on its way.
UNKNOWN_ORDER_GRACE = timedelta(seconds=10)
FIRST_ATTEMPTS_KEPT = 10_000


@dataclass(frozen=True)
class Dependencies:
    engine: AsyncEngine
    quotes: QuoteBook
    risk: RiskClient
    clock: Clock
    last_look_window: timedelta
    reservation_ttl: timedelta
    # how long after a last-look window the sweeper waits for an answer in transit
    last_look_grace: timedelta = timedelta(0)
    first_attempts: OrderedDict[str, datetime] = field(default_factory=OrderedDict)

    def waited_long_enough(self, event_id: str) -> bool:
        """Whether a message waiting for its RFQ has been retried for the full grace."""
        now = self.clock.now()
        first = self.first_attempts.setdefault(event_id, now)
        while len(self.first_attempts) > FIRST_ATTEMPTS_KEPT:
            self.first_attempts.popitem(last=False)
        return now - first > UNKNOWN_ORDER_GRACE

    def uow(self) -> AuditedUnitOfWork:
        return AuditedUnitOfWork(
            self.engine, OUTBOX_TABLES, producer="order-core", clock=self.clock
        )

    @property
    def reads(self) -> OrderQueries:
        return OrderQueries(self.engine)


def unknown_order(
    deps: Dependencies, message: Received, rfq_id: str, *, may_be_early: bool
) -> Exception:
    """Last-look answers and settlement results can only follow an order order_core
    created, so for them an unknown RFQ is final; a quote may just be early."""
    if not may_be_early or deps.waited_long_enough(message.event_id):
        return InvalidMessage(f"unknown rfq {rfq_id}")
    return NotYetKnown(f"rfq {rfq_id} not yet known")
