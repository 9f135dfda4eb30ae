"""The end of a trading day: every RFQ still open that was created before the
close expires, each by its normal RfqExpired transition (audited, announced on
`order.events`), and the command is answered with a `CommandResult` counting them.

Safe to repeat: an expired order is no longer open, so a redelivered or repeated
command expires only what is still open, which is nothing.
"""

from __future__ import annotations

from datetime import UTC

from order_core.adapters.end_of_day import open_rfqs_created_before
from order_core.adapters.repository import OrderRepository
from order_core.domain.lifecycle import OrderEvent
from order_core.service_layer import messages
from order_core.service_layer.context import CONSUMER, Context, emit_state
from otc.bus import topics
from otc.bus.envelope import InvalidMessage, Message
from otc.contracts import events_pb2 as ev
from otc.logging import get_logger

log = get_logger(__name__)

BATCH = 100


async def on_expire_open_rfqs(ctx: Context, msg: Message) -> None:
    p = msg.payload
    assert isinstance(p, ev.ExpireOpenRfqs)
    if not p.business_date or not p.HasField("close"):
        raise InvalidMessage("ExpireOpenRfqs needs a business_date and a close")
    close = p.close.ToDatetime(tzinfo=UTC)
    reason = f"trading day {p.business_date} closed"
    expired = 0
    while True:
        async with ctx.uow() as uow:
            batch = await open_rfqs_created_before(uow.conn, close, BATCH)
            repo = OrderRepository(uow.conn)
            now = ctx.clock.now()
            for order in batch:
                order.apply(OrderEvent.RFQ_EXPIRED, now)
                await repo.save(order)
                emit_state(uow, order, msg, OrderEvent.RFQ_EXPIRED, reason)
            await uow.commit()
        expired += len(batch)
        if len(batch) < BATCH:
            break
    key = f"eod:{p.business_date}"
    async with ctx.uow() as uow:
        if await uow.mark_processed(CONSUMER, msg.event_id):
            uow.emit(
                topics.ORDER_EVENTS,
                key,
                messages.command_result(
                    command_id=msg.event_id,
                    rfq_id="",
                    requester="",
                    state="",
                    accepted=True,
                    reason=f"{expired} open RFQs expired at the close of {p.business_date}",
                ),
                correlation_id=msg.correlation_id or key,
                causation_id=msg.event_id,
            )
            await uow.commit()
    log.info("trading day closed", business_date=p.business_date, expired=expired)
