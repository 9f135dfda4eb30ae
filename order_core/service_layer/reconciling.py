"""The reconciler between order_core and risk_limits: what the sweeper and the
handlers would have done, done again from both sides' real state, for whatever a
crash, a cut connection or a lost call left behind.

- An order still pending a last look well past its window is ended as its
  reservation says (committed: confirmed; anything else: released, timed out).
- A reservation still FROZEN well after it was made, for an order that has ended,
  holds another reservation, or does not exist, is released at once rather than at
  its deadline. One for an order still open (RFQ_SENT, QUOTED) is left to
  risk_limits' deadline: its accept may still be on its way (redelivered after a
  crash, perhaps to another replica), and a release racing that accept's replayed
  Freeze would lose a trade the trader was told was accepted; the deadline is
  enforced under risk_limits' row lock, so that race cannot happen there.

It runs when order_core starts and then periodically. Every step is idempotent and
goes through a versioned update or an idempotent RPC, so replicas may run it at the
same time; `grace` keeps it clear of accepts and last looks still in progress.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from prometheus_client import Counter

from order_core.domain.lifecycle import OPEN_STATES
from order_core.service_layer.deadlines import end_last_looks
from order_core.service_layer.transaction import Dependencies
from otc.logging import get_logger

log = get_logger(__name__)

PAGE = 200
ORPHAN_REASON = "no live order holds this reservation"

RECONCILER_RUNS = Counter(
    "otc_reconciler_runs_total", "Reconciler passes, by outcome (ok, failed)", ["outcome"]
)
ORPHANS_RELEASED = Counter(
    "otc_reconciler_orphans_released_total",
    "FROZEN reservations the reconciler released because no live order held them",
)


@dataclass(frozen=True, slots=True)
class Reconciled:
    last_looks_ended: int
    orphans_released: int


async def reconcile(deps: Dependencies, grace: timedelta) -> Reconciled:
    try:
        now = deps.clock.now()
        ended = await end_last_looks(deps, now - deps.last_look_grace - grace, path="reconciler")
        released = await release_orphans(deps, grace)
    except Exception:
        RECONCILER_RUNS.labels("failed").inc()
        raise
    RECONCILER_RUNS.labels("ok").inc()
    if ended or released:
        log.warning("reconciler repaired state", last_looks_ended=ended, orphans_released=released)
    return Reconciled(ended, released)


async def release_orphans(deps: Dependencies, grace: timedelta) -> int:
    created_before = deps.clock.now() - grace
    released = 0
    after = ""
    while True:
        page = await deps.risk.frozen_before(created_before, after, PAGE)
        for frozen in page:
            order = await deps.reads.order(frozen.rfq_id)
            if order is not None and (
                order.state in OPEN_STATES or order.pending_on(frozen.reservation_id)
            ):
                continue
            answer = await deps.risk.release(frozen.reservation_id, ORPHAN_REASON)
            if answer.ok:
                released += 1
                ORPHANS_RELEASED.inc()
                log.warning(
                    "orphaned reservation released",
                    rfq_id=frozen.rfq_id,
                    reservation_id=frozen.reservation_id,
                )
        if len(page) < PAGE:
            return released
        after = page[-1].reservation_id
