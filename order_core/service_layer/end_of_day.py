"""The end of a trading day: every RFQ still open that was created before the
close expires, each by its normal RfqExpired transition (audited, announced on
`order.events`), and the command is answered with a `CommandResult` counting them.

Safe to repeat: an expired order is no longer open, so a redelivered or repeated
command expires only what is still open, which is nothing.
"""

from __future__ import annotations

from order_core.domain.lifecycle import OrderEvent
from order_core.service_layer import messages
from order_core.service_layer.commands import ExpireOpenRfqs
from order_core.service_layer.transaction import Dependencies, Tx, transaction
from otc.bus import topics
from otc.logging import get_logger

log = get_logger(__name__)

BATCH = 100


async def on_expire_open_rfqs(deps: Dependencies, cmd: ExpireOpenRfqs) -> None:
    expired = 0
    while True:
        batch = await transaction(deps, lambda tx: _expire_batch(tx, cmd), cause=cmd, attempts=1)
        expired += batch
        if batch < BATCH:
            break
    await transaction(deps, lambda tx: _answer(tx, cmd, expired), once=cmd, attempts=1)
    log.info("trading day closed", business_date=cmd.business_date, expired=expired)


async def _expire_batch(tx: Tx, cmd: ExpireOpenRfqs) -> int:
    reason = f"trading day {cmd.business_date} closed"
    batch = await tx.orders.open_created_before(cmd.close, BATCH)
    now = tx.now()
    for order in batch:
        order.apply(OrderEvent.RFQ_EXPIRED, now)
        await tx.orders.save(order)
        tx.emit_state(order, OrderEvent.RFQ_EXPIRED, reason)
    return len(batch)


async def _answer(tx: Tx, cmd: ExpireOpenRfqs, expired: int) -> None:
    key = f"eod:{cmd.business_date}"
    result = messages.command_result(
        command_id=cmd.event_id,
        rfq_id="",
        requester="",
        state="",
        accepted=True,
        reason=f"{expired} open RFQs expired at the close of {cmd.business_date}",
    )
    tx.emit(topics.ORDER_EVENTS, key, result)
