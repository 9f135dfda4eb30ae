"""Booking a confirmed trade: one transaction records the message as processed,
settles the trade (or records why it cannot) and queues the outcome in the outbox.

Settling is all or nothing, and so is its announcement: the balances move, the
trade row is written and `TradeSettled` is queued in the same commit. Running out
of balance is a business outcome, final and announced as `SettlementFailed`;
infrastructure failures propagate so the consumer retries the whole transaction.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from google.protobuf.message import Message as ProtoMessage
from google.protobuf.timestamp_pb2 import Timestamp

from otc.bus.topics import SETTLEMENT_EVENTS
from otc.contracts import events_pb2
from otc.logging import get_logger
from otc.unit_of_work import UnitOfWork
from settlement.adapters.repository import LedgerRepository
from settlement.domain.commands import BookTrade
from settlement.domain.ledger import TradeStatus, dvp_postings, first_shortfall
from settlement.metrics import TRADES_BOOKED

# The name under which processed message ids are recorded: shared by every instance,
# so a message is booked once however many settlement processes see it.
CONSUMER = "settlement"

log = get_logger(__name__)


class Outcome(StrEnum):
    SETTLED = "settled"
    FAILED = "failed"
    DUPLICATE = "duplicate"


async def book_trade(cmd: BookTrade, uow: UnitOfWork) -> Outcome:
    async with uow:
        outcome, reason = await _book(cmd, uow)
        await uow.commit()
    TRADES_BOOKED.labels(outcome.value).inc()
    trade = cmd.trade
    if outcome is Outcome.FAILED:
        log.warning(
            "settlement failed", rfq_id=trade.rfq_id, trade_id=trade.trade_id, reason=reason
        )
    elif outcome is Outcome.SETTLED:
        log.info("trade settled", rfq_id=trade.rfq_id, trade_id=trade.trade_id)
    else:
        log.info("trade already booked", rfq_id=trade.rfq_id, trade_id=trade.trade_id)
    return outcome


async def _book(cmd: BookTrade, uow: UnitOfWork) -> tuple[Outcome, str]:
    if not await uow.mark_processed(CONSUMER, cmd.event_id):
        return Outcome.DUPLICATE, ""
    trade = cmd.trade
    ledger = LedgerRepository(uow.conn)
    postings = dvp_postings(trade)
    shortfall = first_shortfall(await ledger.lock_balances(p.account for p in postings), postings)
    status = TradeStatus.SETTLED if shortfall is None else TradeStatus.FAILED
    reason = "" if shortfall is None else shortfall.describe()
    booked_at = uow.clock.now()
    if not await ledger.add_trade(trade, status, reason, booked_at):
        return Outcome.DUPLICATE, ""
    event: ProtoMessage
    if shortfall is None:
        await ledger.post(trade.trade_id, postings, booked_at)
        event = events_pb2.TradeSettled(
            trade_id=trade.trade_id, rfq_id=trade.rfq_id, settled_at=_timestamp(booked_at)
        )
    else:
        event = events_pb2.SettlementFailed(
            trade_id=trade.trade_id, rfq_id=trade.rfq_id, reason=reason
        )
    uow.emit(
        SETTLEMENT_EVENTS,
        trade.rfq_id,
        event,
        correlation_id=cmd.correlation_id,
        causation_id=cmd.event_id,
    )
    return (Outcome.SETTLED if shortfall is None else Outcome.FAILED), reason


def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp
