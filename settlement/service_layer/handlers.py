"""Booking a confirmed trade: one transaction records the message as processed,
records the trade as a settlement instruction and, when its value date has come,
makes the first attempt to settle it (see `settling`).

Settling is all or nothing, and so is its announcement: the balances move, the
journal is written and `TradeSettled` is queued in the same commit. A trade the
parties cannot meet yet is tried again later, and announced as `SettlementFailed`
once the attempts are spent; infrastructure failures propagate so the consumer
retries the whole transaction.
"""

from __future__ import annotations

from otc.logging import get_logger
from settlement.domain.commands import BookTrade
from settlement.domain.instructions import Instruction
from settlement.metrics import TRADES_BOOKED
from settlement.service_layer.settling import Outcome, Rules, attempt
from settlement.service_layer.unit_of_work import SettlementUnitOfWork

__all__ = ["CONSUMER", "Outcome", "Rules", "book_trade"]

# The name under which processed message ids are recorded: shared by every instance,
# so a message is booked once however many settlement processes see it.
CONSUMER = "settlement"

log = get_logger(__name__)


async def book_trade(cmd: BookTrade, uow: SettlementUnitOfWork, rules: Rules) -> Outcome:
    async with uow:
        outcome = await _book(cmd, uow, rules)
        await uow.commit()
    TRADES_BOOKED.labels(outcome.value).inc()
    trade = cmd.trade
    if outcome is Outcome.DUPLICATE:
        log.info("trade already booked", rfq_id=trade.rfq_id, trade_id=trade.trade_id)
    elif outcome is Outcome.SCHEDULED:
        log.info("trade waits for its value date", rfq_id=trade.rfq_id, trade_id=trade.trade_id)
    return outcome


async def _book(cmd: BookTrade, uow: SettlementUnitOfWork, rules: Rules) -> Outcome:
    if not await uow.mark_processed(CONSUMER, cmd.event_id):
        return Outcome.DUPLICATE
    trade = cmd.trade
    instruction = Instruction(
        trade=trade,
        confirmed_at=cmd.confirmed_at,
        value_date=rules.calendar.value_date(
            trade.instrument.symbol, cmd.confirmed_at, trade.instrument.settlement_days
        ),
        attempts=0,
        correlation_id=cmd.correlation_id,
        causation_id=cmd.event_id,
    )
    now = uow.clock.now()
    if not await uow.instructions.add(instruction, booked_at=now, next_attempt_at=None):
        return Outcome.DUPLICATE
    if not instruction.due_by(now):
        return Outcome.SCHEDULED
    return await attempt(uow, instruction, now, rules.retry)
