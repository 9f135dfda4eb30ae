"""Deadlines kept in the order rows, enforced by a sweeper: RFQ windows that close
and last looks that go unanswered. Expiring RFQs locks rows with SKIP LOCKED, so
several order_core replicas sweep at once without doing the same order twice; an
overdue last look is ended through its reservation (order_core.service_layer.
resolving), whose versioned update lets one replica win and the others find it done."""

from __future__ import annotations

from datetime import datetime

from prometheus_client import Counter

from order_core.domain.lifecycle import OrderEvent
from order_core.service_layer.resolving import Resolution, resolve
from order_core.service_layer.transaction import Dependencies, Tx, transaction
from otc.errors import is_transient
from otc.logging import get_logger

log = get_logger(__name__)

SWEEP_FAILURES = Counter(
    "otc_last_look_sweep_failures_total",
    "Overdue last looks the sweeper could not end on a pass (tried again on the next)",
)

BATCH = 100


async def expire_rfqs(deps: Dependencies) -> int:
    return await transaction(deps, _expire_overdue_rfqs, attempts=1)


async def _expire_overdue_rfqs(tx: Tx) -> int:
    now = tx.now()
    overdue = await tx.orders.overdue_rfqs(now, BATCH)
    for order in overdue:
        order.apply(OrderEvent.RFQ_EXPIRED, now)
        await tx.orders.save(order)
        tx.emit_state(order, OrderEvent.RFQ_EXPIRED, "response window closed")
    return len(overdue)


async def time_out_last_looks(deps: Dependencies) -> int:
    """Ends the last looks whose window closed, plus the transit allowance for an
    answer sent in time that is still on its way."""
    return await end_last_looks(deps, deps.clock.now() - deps.last_look_grace, path="sweeper")


async def end_last_looks(deps: Dependencies, cutoff: datetime, *, path: str) -> int:
    """Ends every last look whose window closed by `cutoff`, one order at a time and
    each as its reservation says. An order that cannot be ended now is passed over,
    not waited on, so no order ever holds up the others; the next pass tries again."""
    ended = 0
    after: tuple[datetime, str] | None = None
    while True:
        page = await deps.reads.overdue_last_looks(cutoff, BATCH, after=after)
        for order in page:
            assert order.reservation_id is not None, "a pending order holds a reservation"
            try:
                resolution = await resolve(deps, order.rfq_id, order.reservation_id, path=path)
            except Exception as exc:
                SWEEP_FAILURES.inc()
                log.warning(
                    "last look could not be ended now",
                    rfq_id=order.rfq_id,
                    error=f"{type(exc).__name__}: {exc}",
                )
                if is_transient(exc):
                    return ended  # risk_limits or the database is away: no use going on
                continue
            if resolution is not Resolution.NOT_PENDING:
                ended += 1
        if len(page) < BATCH:
            break
        last = page[-1]
        assert last.lastlook_deadline is not None
        after = (last.lastlook_deadline, last.rfq_id)
    if ended:
        log.info("last looks ended after their window", count=ended)
    return ended


async def sweep(deps: Dependencies) -> int:
    return await expire_rfqs(deps) + await time_out_last_looks(deps)
