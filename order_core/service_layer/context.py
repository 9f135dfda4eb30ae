"""What every order_core handler shares: its dependencies, the idempotency and
optimistic-retry helpers, and the answers it publishes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

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
# A quote for an RFQ order_core has not seen may simply have overtaken the
# RfqRequested on the other topic; it is retried (holding up its partition) for at
# most this long, then dead-lettered.
UNKNOWN_ORDER_GRACE = timedelta(seconds=10)


@dataclass(frozen=True)
class Context:
    engine: AsyncEngine
    quotes: QuoteBook
    risk: RiskClient
    clock: Clock
    last_look_window: timedelta
    reservation_ttl: timedelta

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.engine, OUTBOX_TABLES, producer="order-core", clock=self.clock)


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
    if not may_be_early or ctx.clock.now() - msg.occurred_at > UNKNOWN_ORDER_GRACE:
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


async def refuse(ctx: Context, msg: Message, rfq_id: str, code: str, reason: str) -> None:
    async with ctx.uow() as uow:
        if not await uow.mark_processed(CONSUMER, msg.event_id):
            return
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


def unknown_command_target(ctx: Context, msg: Message, rfq_id: str) -> tuple[str, str]:
    """The edge sends commands only for RFQs it created, so an unknown one is most
    likely still on its way on rfq.requests: wait for it a little, then refuse."""
    if ctx.clock.now() - msg.occurred_at <= UNKNOWN_ORDER_GRACE:
        raise NotYetKnown(f"rfq {rfq_id} not yet known")
    return ("not_found", f"no RFQ {rfq_id}")
