"""What every order_core handler shares: its dependencies, the idempotency and
optimistic-retry helpers, and the answers it publishes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from order_core.adapters.audited_uow import AuditedUnitOfWork
from order_core.adapters.repository import ConcurrentUpdate, OrderRepository
from order_core.adapters.risk_client import RiskClient
from order_core.adapters.tables import OUTBOX_TABLES
from order_core.domain.order import Order
from order_core.service_layer import messages
from otc.bus import topics
from otc.bus.envelope import InvalidMessage, Message
from otc.clock import Clock
from otc.errors import NotYetKnown
from otc.logging import get_logger
from otc.quote_book import QuoteBook
from otc.unit_of_work import UnitOfWork

log = get_logger(__name__)


CONSUMER = "order-core"
VERSION_RETRIES = 8
# A quote or command for an RFQ order_core has not seen may simply have overtaken
# the RfqRequested on the other topic; it is retried (holding up its partition) for
# at most this long from its first attempt in this process, then given up on. The
# clock starts at the first attempt, not at the message's age, because after a
# restart every waiting message is old and its RFQ is still on its way.
UNKNOWN_ORDER_GRACE = timedelta(seconds=10)
FIRST_ATTEMPTS_KEPT = 10_000


@dataclass(frozen=True)
class Context:
    engine: AsyncEngine
    quotes: QuoteBook
    risk: RiskClient
    clock: Clock
    last_look_window: timedelta
    reservation_ttl: timedelta
    # how long after a last-look window the sweeper waits for an answer in transit
    last_look_grace: timedelta = timedelta(0)
    first_attempts: OrderedDict[str, datetime] = field(default_factory=OrderedDict)

    def waited_long_enough(self, msg: Message) -> bool:
        """Whether a message waiting for its RFQ has been retried for the full grace."""
        now = self.clock.now()
        first = self.first_attempts.setdefault(msg.event_id, now)
        while len(self.first_attempts) > FIRST_ATTEMPTS_KEPT:
            self.first_attempts.popitem(last=False)
        return now - first > UNKNOWN_ORDER_GRACE

    def uow(self) -> UnitOfWork:
        return AuditedUnitOfWork(
            self.engine, OUTBOX_TABLES, producer="order-core", clock=self.clock
        )


Handler = Callable[[Context, Message], Awaitable[None]]


async def retry_on_conflict(step: Callable[[], Awaitable[None]]) -> None:
    for _ in range(VERSION_RETRIES - 1):
        try:
            return await step()
        except ConcurrentUpdate:
            continue
    await step()


def unknown_order(ctx: Context, msg: Message, rfq_id: str, *, may_be_early: bool) -> Exception:
    """Last-look answers and settlement results can only follow an order order_core
    created, so for them an unknown RFQ is final; a quote may just be early."""
    if not may_be_early or ctx.waited_long_enough(msg):
        return InvalidMessage(f"unknown rfq {rfq_id}")
    return NotYetKnown(f"rfq {rfq_id} not yet known")


def emit_state(uow: UnitOfWork, order: Order, msg: Message, event: str, reason: str = "") -> None:
    uow.emit(
        topics.ORDER_EVENTS,
        order.rfq_id,
        messages.state_changed(order, event, reason),
        correlation_id=msg.correlation_id or order.rfq_id,
        causation_id=msg.event_id,
    )


async def already_processed(ctx: Context, event_id: str) -> bool:
    table = OUTBOX_TABLES.processed_events
    async with ctx.engine.connect() as conn:
        row = await conn.execute(
            select(table.c.event_id).where(
                table.c.consumer == CONSUMER, table.c.event_id == event_id
            )
        )
        return row.first() is not None


def emit_result(
    uow: UnitOfWork,
    msg: Message,
    *,
    rfq_id: str,
    requester: str,
    state: str,
    accepted: bool,
    code: str = "",
    reason: str = "",
) -> None:
    """The answer to a trader's command, which the edge is waiting for."""
    uow.emit(
        topics.ORDER_EVENTS,
        rfq_id,
        messages.command_result(
            command_id=msg.event_id,
            rfq_id=rfq_id,
            requester=requester,
            state=state,
            accepted=accepted,
            reason_code=code,
            reason=reason,
        ),
        correlation_id=msg.correlation_id or rfq_id,
        causation_id=msg.event_id,
    )


async def refuse(ctx: Context, msg: Message, rfq_id: str, code: str, reason: str) -> str | None:
    """Answers a command with a refusal; returns its code, or None if the command
    had already been answered."""
    async with ctx.uow() as uow:
        if not await uow.mark_processed(CONSUMER, msg.event_id):
            return None
        order = await OrderRepository(uow.conn).get(rfq_id)
        emit_result(
            uow,
            msg,
            rfq_id=rfq_id,
            requester=order.requester if order else "",
            state=order.state.value if order else "",
            accepted=False,
            code=code,
            reason=reason,
        )
        await uow.commit()
    log.info("command refused", rfq_id=rfq_id, code=code, reason=reason)
    return code


def unknown_command_target(rfq_id: str) -> tuple[str, str]:
    """An RFQ's creation precedes its commands on the same `order.commands`
    partition, so a command for an RFQ not on record has nothing to wait for."""
    return ("not_found", f"no RFQ {rfq_id}")
