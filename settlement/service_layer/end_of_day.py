"""The end-of-day batch: close the trading day, then reconcile it.

In order: order_core expires the RFQs still open at the close (its own command,
its own transitions), risk_limits expires the reservations left frozen past
their deadline, settlement settles the instructions whose value date has come,
then the three services' books are compared, and the platform's invariants
(a check the caller hands in, since it reads every service's books) are checked
over one snapshot of all of them. Every step is
idempotent, so the batch is safe to run twice, and the report depends only on the
books, so a second run over unchanged books writes the same report.

A break that may be a message still on its way (an outcome order_core has not
applied yet, credit risk_limits has not freed yet, a retry due in a moment) gets
a few seconds to resolve before it is reported.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from otc.clock import Clock
from otc.logging import get_logger
from settlement.domain.eod_report import Break, Check, Report, TradingDay
from settlement.domain.instructions import RetryPolicy
from settlement.domain.reconciliation import reconcile
from settlement.domain.views import Books, CreditView, OrderView
from settlement.metrics import EOD_BREAKS
from settlement.service_layer.settling import settle_value_dated
from settlement.service_layer.unit_of_work import SettlementUnitOfWork

log = get_logger(__name__)

# order_core's audit trail is read from a little before the earliest trade in scope.
AUDIT_MARGIN = timedelta(minutes=1)
REREAD_INTERVAL_S = 0.5


class OrderCorePort(Protocol):
    async def expire_open_rfqs(self, day: TradingDay, timeout: float) -> str: ...

    async def order_view(self, day: TradingDay, since: datetime) -> OrderView: ...


class RiskPort(Protocol):
    async def expire_frozen(self, before: datetime) -> int: ...

    async def credit_in_use(self) -> CreditView: ...


class Finding(Protocol):
    @property
    def invariant(self) -> str: ...

    @property
    def detail(self) -> str: ...


class InvariantCheck(Protocol):
    """The platform-wide invariant check over every service's books, as of `now`."""

    async def __call__(self, engine: AsyncEngine, *, now: datetime) -> Sequence[Finding]: ...


class DayNotClosed(ValueError):
    """The batch closes a day only once the day is over."""


@dataclass(frozen=True, slots=True)
class EndOfDay:
    done: list[str]  # what the batch did, for the operator; not part of the report
    report: Report


async def run_end_of_day(
    day: TradingDay,
    *,
    engine: AsyncEngine,
    clock: Clock,
    order_core: OrderCorePort,
    risk: RiskPort,
    retry: RetryPolicy,
    invariants: InvariantCheck,
    settle_wait_s: float = 30.0,
    reply_timeout_s: float = 30.0,
) -> EndOfDay:
    now = clock.now()
    if now < day.close:
        raise DayNotClosed(
            f"{day.date} has not closed yet: it closes at {day.close.isoformat()} (UTC)"
        )
    done = [await order_core.expire_open_rfqs(day, reply_timeout_s)]
    expired = await risk.expire_frozen(day.close)
    done.append(f"{expired} credit reservations left frozen past their deadline expired")

    def uow() -> SettlementUnitOfWork:
        return SettlementUnitOfWork(engine, clock=clock)

    counts = await settle_value_dated(uow, day.date, retry)
    attempted = ", ".join(f"{n} {outcome.value}" for outcome, n in sorted(counts.items()))
    done.append(f"value-date instructions due by {day.date}: {attempted or 'none'}")

    deadline = time.monotonic() + settle_wait_s
    while True:
        report, in_flight = await reconcile_day(day, engine, clock, order_core, risk)
        if not in_flight or time.monotonic() > deadline:
            break
        await asyncio.sleep(REREAD_INTERVAL_S)
    # Judged as of the close, like the rest of the report: judged as of now, a row
    # younger than the grace at one run would be a break at the next over the same books.
    found = await invariants(engine, now=day.close)
    report = report.with_breaks(Break(Check.INVARIANT, b.invariant, b.detail) for b in found)
    for b in report.breaks:
        EOD_BREAKS.labels(b.check.value).inc()
    log.info("end of day", business_date=day.date.isoformat(), breaks=len(report.breaks))
    return EndOfDay(done, report)


async def reconcile_day(
    day: TradingDay, engine: AsyncEngine, clock: Clock, order_core: OrderCorePort, risk: RiskPort
) -> tuple[Report, bool]:
    """The day's report, and whether a break in it may still resolve by itself."""
    async with SettlementUnitOfWork(engine, clock=clock, snapshot=True) as snapshot:
        books = await snapshot.books.read(day)
    touching_day = [
        b.confirmed_at
        for b in books.trades
        if b.value_date == day.date or (b.settled_at is not None and day.contains(b.settled_at))
    ]
    since = min([day.start, *touching_day]) - AUDIT_MARGIN
    order = await order_core.order_view(day, since)
    credit = await risk.credit_in_use()
    report = reconcile(
        Books(
            day=day,
            now=clock.now(),
            order=order,
            trades=books.trades,
            journals=books.journals,
            journal_counts=books.journal_counts,
            announced=books.announced,
            accounts=books.accounts,
            credit=credit,
        )
    )
    return report, any(b.in_flight for b in report.breaks)
