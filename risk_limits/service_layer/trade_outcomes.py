"""The end of a committed reservation: settlement has booked its trade, or failed to.
Either way the exposure is over (a failed settlement means no trade happened), and
the credit leaves `used`.

Settlement announces outcomes on `settlement.events` naming the RFQ and the trade,
not the reservation. An RFQ has at most one COMMITTED reservation (an order confirms
once, and a unique index holds it), so the RFQ finds it. The event is recorded in
the inbox in the transaction of its effect, and the move is idempotent on the
reservation (COMMITTED -> SETTLED once, then nothing): redelivery changes nothing.
Operators can do the same by reservation id.
"""

from __future__ import annotations

from otc.logging import correlation, get_logger
from risk_limits.domain import commands
from risk_limits.domain.credit import require_id
from risk_limits.domain.errors import ReservationNotFound
from risk_limits.domain.reservation import Action, Status
from risk_limits.metrics import SETTLEMENTS

from .settling import apply, valid_id
from .unit_of_work import Dependencies

log = get_logger(__name__)

# The name under which consumed events are recorded: shared by every replica, so
# an event is applied once however many of them receive it.
CONSUMER = "risk-limits"


def _action(failed: bool) -> Action:
    return Action.FAIL_SETTLEMENT if failed else Action.SETTLE


async def settle_reservation(cmd: commands.SettleReservation, deps: Dependencies) -> Status:
    reservation_id = valid_id(cmd.reservation_id, SETTLEMENTS)
    now = deps.clock.now()
    async with deps.uow() as uow:
        stored = await uow.reservations.get(reservation_id, for_update=True)
        if stored is None:
            SETTLEMENTS.labels("not_found").inc()
            raise ReservationNotFound(f"reservation {reservation_id} not found")
        return await apply(uow, stored, _action(cmd.failed), cmd.reason, now, SETTLEMENTS)


async def record_trade_outcome(
    cmd: commands.RecordTradeOutcome, deps: Dependencies
) -> Status | None:
    """The reservation's status once the event is applied; None for a redelivered
    event, or a trade with no committed reservation here (nothing to free)."""
    rfq_id = require_id(cmd.rfq_id, "rfq_id")
    now = deps.clock.now()
    with correlation(rfq_id, rfq_id=rfq_id, trade_id=cmd.trade_id):
        async with deps.uow() as uow:
            if not await uow.inbox.mark_processed(CONSUMER, cmd.event_id, now):
                SETTLEMENTS.labels("duplicate").inc()
                return None
            stored = await uow.reservations.of_settled_trade(rfq_id)
            if stored is None:
                await uow.commit()
                SETTLEMENTS.labels("unknown").inc()
                log.warning("no committed reservation behind the trade; nothing to free")
                return None
            reason = (
                f"trade {cmd.trade_id} failed to settle: {cmd.reason}"
                if cmd.failed
                else f"trade {cmd.trade_id} settled"
            )
            return await apply(uow, stored, _action(cmd.failed), reason, now, SETTLEMENTS)
