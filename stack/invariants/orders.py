"""The invariants that follow one deal across services: its order's deadlines, the
credit reservation it stands on, and the trade settlement booked for it.

An order and its reservation move in step, each in its own service's transaction:

    order  PENDING_CONFIRMATION  CONFIRMED   SETTLED   SETTLEMENT_FAILED
    credit FROZEN (or COMMITTED) COMMITTED   SETTLED   SETTLEMENT_FAILED

A PENDING_CONFIRMATION order may stand on a COMMITTED reservation for as long as
it stays pending: the Commit precedes order_core's confirming transaction, and an
order stuck there is `order_stuck_pending` already. Any other pair is a break once
both rows are older than the grace.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator

from order_core.domain.lifecycle import OPEN_STATES, OrderState
from risk_limits.domain.reservation import Status
from settlement.domain.ledger import TradeStatus

from .snapshot import Break, Horizon, OrderRow, ReservationRow, TradeRow, iso

S = OrderState

# What the reservation of an order in each state may be in; states absent hold none.
HOLDING: dict[str, frozenset[str]] = {
    S.PENDING_CONFIRMATION: frozenset({Status.FROZEN, Status.COMMITTED}),
    S.CONFIRMED: frozenset({Status.COMMITTED}),
    S.SETTLED: frozenset({Status.SETTLED}),
    S.SETTLEMENT_FAILED: frozenset({Status.SETTLEMENT_FAILED}),
}
# Reservations that still hold credit or stand for a trade: each needs its order.
LIVE = frozenset({Status.FROZEN, Status.COMMITTED, Status.SETTLED, Status.SETTLEMENT_FAILED})
TRADED = frozenset({S.CONFIRMED, S.SETTLED, S.SETTLEMENT_FAILED})
ORDER_STATE_OF: dict[str, str] = {
    TradeStatus.PENDING: S.CONFIRMED,
    TradeStatus.SETTLED: S.SETTLED,
    TradeStatus.FAILED: S.SETTLEMENT_FAILED,
}


def deadline_breaks(orders: Iterable[OrderRow], horizon: Horizon) -> Iterator[Break]:
    """The sweeper ends every window that closes; one still open past the grace is stuck."""
    for o in orders:
        if o.state == S.PENDING_CONFIRMATION:
            if o.lastlook_deadline is None:
                yield Break("order_stuck_pending", f"order {o.rfq_id} is pending with no deadline")
            elif horizon.passed(o.lastlook_deadline):
                yield Break(
                    "order_stuck_pending",
                    f"order {o.rfq_id} is still {o.state}; its last look closed at "
                    f"{iso(o.lastlook_deadline)}",
                )
        elif o.state in OPEN_STATES and horizon.passed(o.rfq_expires_at):
            yield Break(
                "rfq_not_expired",
                f"rfq {o.rfq_id} is still {o.state}; its window closed at {iso(o.rfq_expires_at)}",
            )


def reservation_breaks(
    orders: Iterable[OrderRow], reservations: Iterable[ReservationRow], horizon: Horizon
) -> Iterator[Break]:
    """Every order that holds credit stands on its reservation in the matching
    status, and every live reservation is held by its order."""
    orders, reservations = tuple(orders), tuple(reservations)
    by_id = {r.reservation_id: r for r in reservations}
    for o in orders:
        allowed = HOLDING.get(o.state)
        if allowed is None:
            continue
        r = by_id.get(o.reservation_id or "")
        if r is None:
            if horizon.passed(o.updated_at):
                yield Break(
                    "reservation_state_mismatch",
                    f"order {o.rfq_id} is {o.state} but its reservation "
                    f"{o.reservation_id or '(none)'} does not exist",
                )
        elif (r.status not in allowed or r.rfq_id != o.rfq_id) and horizon.passed(
            o.updated_at, r.updated_at
        ):
            of = "" if r.rfq_id == o.rfq_id else f" for rfq {r.rfq_id}"
            yield Break(
                "reservation_state_mismatch",
                f"order {o.rfq_id} is {o.state} but its reservation {r.reservation_id} is "
                f"{r.status}{of}",
            )
    owners = {o.rfq_id: o for o in orders}
    for r in reservations:
        owner = owners.get(r.rfq_id)
        held = owner is not None and owner.reservation_id == r.reservation_id
        # A freeze for an open order may be an accept still on its way: it is
        # risk_limits' to end, at the reservation's deadline.
        waiting = r.status == Status.FROZEN and owner is not None and owner.state in OPEN_STATES
        since = r.deadline if waiting else None
        if r.status in LIVE and not held and horizon.passed(r.updated_at, since):
            if owner is None:
                why = "there is no such order"
            elif owner.reservation_id is None:
                why = f"the order is {owner.state} and holds no reservation"
            else:
                why = f"the order is {owner.state} on reservation {owner.reservation_id}"
            yield Break(
                "reservation_orphaned",
                f"reservation {r.reservation_id} is {r.status} for rfq {r.rfq_id}, but {why}",
            )


def booking_breaks(
    orders: Iterable[OrderRow], trades: Iterable[TradeRow], horizon: Horizon
) -> Iterator[Break]:
    """Settlement books a trade only after order_core confirmed it, so a booking
    needs no grace; an order confirmed and not booked yet does."""
    orders, trades = tuple(orders), tuple(trades)
    of_rfq: dict[str, list[TradeRow]] = defaultdict(list)
    for t in trades:
        of_rfq[t.rfq_id].append(t)
    for rfq_id, same_rfq in of_rfq.items():
        if len(same_rfq) > 1:
            ids = ", ".join(sorted(t.trade_id for t in same_rfq))
            yield Break("trade_booked_twice", f"rfq {rfq_id} has {len(same_rfq)} trades: {ids}")
    by_id = {t.trade_id: t for t in trades}
    for o in orders:
        if o.state not in TRADED:
            continue
        booked = by_id.get(o.trade_id or "")
        if booked is None or booked.rfq_id != o.rfq_id:
            if o.state != S.CONFIRMED or horizon.passed(o.updated_at):
                yield Break(
                    "trade_not_booked",
                    f"order {o.rfq_id} is {o.state} but settlement has no trade "
                    f"{o.trade_id or '(none)'} for it",
                )
        elif ORDER_STATE_OF.get(booked.status) != o.state and horizon.passed(
            o.updated_at, booked.settled_at or booked.booked_at
        ):
            yield Break(
                "trade_outcome_mismatch",
                f"order {o.rfq_id} is {o.state} but its trade {booked.trade_id} is {booked.status}",
            )
    owners = {o.rfq_id: o for o in orders}
    for t in trades:
        owner = owners.get(t.rfq_id)
        if owner is None:
            why = "there is no such order"
        elif owner.state not in TRADED:
            why = f"the order is {owner.state}"
        elif owner.trade_id != t.trade_id:
            why = f"the order's trade is {owner.trade_id or '(none)'}"
        else:
            continue
        yield Break("booking_without_trade", f"trade {t.trade_id} of rfq {t.rfq_id}: {why}")
