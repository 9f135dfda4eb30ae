"""One settlement attempt, and the batches that make them: the retry sweep and the
value-date batch.

An attempt runs inside the caller's transaction, with the instruction's row
locked: it locks the accounts, and either books the trade's journal, marks it
SETTLED and queues `TradeSettled`, or records the refusal and when to try again,
or gives up and queues `SettlementFailed` with the reason. Each is one commit
with its outbox message, so an outcome is announced exactly when it happens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from google.protobuf.message import Message as ProtoMessage
from google.protobuf.timestamp_pb2 import Timestamp

from otc import failpoints
from otc.bus.topics import SETTLEMENT_EVENTS
from otc.calendar import TradingCalendar
from otc.contracts import events_pb2
from otc.logging import get_logger
from settlement.domain.instructions import GiveUp, Instruction, RetryPolicy, after_refusal
from settlement.domain.ledger import JournalKind, TradeStatus, dvp_postings, refusal
from settlement.metrics import SETTLEMENT_ATTEMPTS
from settlement.service_layer.unit_of_work import SettlementUnitOfWork

log = get_logger(__name__)

BATCH = 100


class Outcome(StrEnum):
    SETTLED = "settled"
    FAILED = "failed"
    RETRYING = "retrying"  # refused for now, tried again later
    SCHEDULED = "scheduled"  # waits for its value date
    DUPLICATE = "duplicate"


@dataclass(frozen=True, slots=True)
class Rules:
    calendar: TradingCalendar
    retry: RetryPolicy


async def attempt(
    uow: SettlementUnitOfWork, instruction: Instruction, now: datetime, policy: RetryPolicy
) -> Outcome:
    """Tries to settle `instruction`, whose row the caller's transaction holds."""
    trade = instruction.trade
    ledger = uow.ledger
    instructions = uow.instructions
    postings = dvp_postings(trade)
    holdings = await ledger.lock_accounts(p.account for p in postings)
    refused = refusal(holdings.balances, holdings.blocked, postings)
    attempts = instruction.attempts + 1
    event: ProtoMessage
    if refused is None:
        failpoints.hit("settlement.book.before")
        booked = await ledger.post_journal(
            JournalKind.TRADE,
            trade.trade_id,
            postings,
            value_date=instruction.value_date,
            booked_at=now,
        )
        # The instruction row is locked and PENDING: its journal cannot exist yet.
        assert booked, f"trade {trade.trade_id} has a journal but is still pending"
        await instructions.finish(trade.trade_id, TradeStatus.SETTLED, "", attempts, now)
        failpoints.hit("settlement.book.after")
        event = events_pb2.TradeSettled(
            trade_id=trade.trade_id, rfq_id=trade.rfq_id, settled_at=_timestamp(now)
        )
        outcome = Outcome.SETTLED
    else:
        after = after_refusal(refused, attempts, policy, now)
        if not isinstance(after, GiveUp):
            await instructions.retry_later(trade.trade_id, attempts, after.reason, after.at)
            SETTLEMENT_ATTEMPTS.labels(Outcome.RETRYING.value).inc()
            log.info(
                "settlement refused, will retry",
                rfq_id=trade.rfq_id,
                trade_id=trade.trade_id,
                attempts=attempts,
                reason=after.reason,
                retry_at=after.at.isoformat(),
            )
            return Outcome.RETRYING
        await instructions.finish(trade.trade_id, TradeStatus.FAILED, after.reason, attempts, now)
        event = events_pb2.SettlementFailed(
            trade_id=trade.trade_id, rfq_id=trade.rfq_id, reason=after.reason
        )
        outcome = Outcome.FAILED
    uow.emit(
        SETTLEMENT_EVENTS,
        trade.rfq_id,
        event,
        correlation_id=instruction.correlation_id or trade.rfq_id,
        causation_id=instruction.causation_id,
    )
    SETTLEMENT_ATTEMPTS.labels(outcome.value).inc()
    if outcome is Outcome.FAILED:
        log.warning(
            "settlement failed", rfq_id=trade.rfq_id, trade_id=trade.trade_id, attempts=attempts
        )
    else:
        log.info("trade settled", rfq_id=trade.rfq_id, trade_id=trade.trade_id, attempts=attempts)
    return outcome


UowFactory = Callable[[], SettlementUnitOfWork]


async def settle_due(uow: UowFactory, policy: RetryPolicy) -> int:
    """Makes one batch of due retries; returns how many were attempted."""
    async with uow() as tx:
        now = tx.clock.now()
        due = await tx.instructions.claim_due(now, BATCH)
        for instruction in due:
            await attempt(tx, instruction, now, policy)
        await tx.commit()
    return len(due)


async def settle_value_dated(uow: UowFactory, day: date, policy: RetryPolicy) -> dict[Outcome, int]:
    """The value-date batch: attempts every instruction waiting for a value date on
    or before `day`; refused ones join the retry sweep. Counts the outcomes."""
    counts: dict[Outcome, int] = {}
    while True:
        async with uow() as tx:
            now = tx.clock.now()
            waiting = await tx.instructions.claim_value_dated(day, BATCH)
            for instruction in waiting:
                outcome = await attempt(tx, instruction, now, policy)
                counts[outcome] = counts.get(outcome, 0) + 1
            await tx.commit()
        if len(waiting) < BATCH:
            return counts


def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp
