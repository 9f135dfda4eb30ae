"""The invariants as pure functions over made-up rows: a consistent snapshot has no
break, each disagreement is named with its rows and numbers, and a disagreement
younger than the grace (a commit of another service on its way) is not one yet."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import pytest

from order_core.domain.trail_verifier import Finding
from risk_limits.domain.credit import Hold, LineKey
from stack.invariants.rules import find_breaks
from stack.invariants.snapshot import (
    AccountRow,
    Break,
    JournalSum,
    LineRow,
    OrderRow,
    ReservationRow,
    Snapshot,
    TradeRow,
)

NOW = datetime(2026, 1, 7, 12, 0, tzinfo=UTC)
GRACE = timedelta(seconds=30)
OLD = NOW - timedelta(minutes=10)
YOUNG = NOW - timedelta(seconds=5)
LATER = NOW + timedelta(hours=1)
Row = TypeVar("Row", OrderRow, ReservationRow, LineRow, TradeRow, JournalSum, AccountRow)
KEYS = (LineKey("A"), LineKey("A", "MM"), LineKey("MM"), LineKey("MM", "A"))


def order(
    rfq_id: str,
    state: str,
    reservation_id: str | None = None,
    *,
    trade_id: str | None = None,
    lastlook_deadline: datetime | None = None,
) -> OrderRow:
    return OrderRow(rfq_id, state, reservation_id, trade_id, LATER, lastlook_deadline, OLD)


def reservation(
    reservation_id: str, rfq_id: str, status: str, amount: str = "0", at: datetime = OLD
) -> ReservationRow:
    holds = tuple(Hold(key, Decimal(amount), "USD") for key in KEYS) if amount != "0" else ()
    return ReservationRow(reservation_id, rfq_id, status, holds, at, at + GRACE)


def line(key: LineKey, used: str = "70", frozen: str = "50", limit: str = "1000") -> LineRow:
    return LineRow(key, "USD", Decimal(limit), Decimal(used), Decimal(frozen))


def trade(trade_id: str, rfq_id: str, status: str, journals: int = 0) -> TradeRow:
    return TradeRow(trade_id, rfq_id, status, OLD, None if status == "PENDING" else OLD, journals)


WORLD = Snapshot(
    now=NOW,
    orders=(
        order("R-OPEN", "QUOTED"),
        order("R-PEND", "PENDING_CONFIRMATION", "RES-PEND", lastlook_deadline=LATER),
        order("R-CONF", "CONFIRMED", "RES-CONF", trade_id="T-CONF"),
        order("R-SET", "SETTLED", "RES-SET", trade_id="T-SET"),
        order("R-FAIL", "SETTLEMENT_FAILED", "RES-FAIL", trade_id="T-FAIL"),
        order("R-OLD", "EXPIRED"),
    ),
    reservations=(
        reservation("RES-GONE", "R-OLD", "RELEASED", "10"),
        reservation("RES-PEND", "R-PEND", "FROZEN", "50"),
        reservation("RES-CONF", "R-CONF", "COMMITTED", "70"),
        reservation("RES-SET", "R-SET", "SETTLED", "200"),
        reservation("RES-FAIL", "R-FAIL", "SETTLEMENT_FAILED", "30"),
    ),
    lines=tuple(line(key) for key in KEYS),
    trades=(
        trade("T-CONF", "R-CONF", "PENDING"),
        trade("T-SET", "R-SET", "SETTLED", journals=1),
        trade("T-FAIL", "R-FAIL", "FAILED"),
    ),
    journal_sums=(
        JournalSum(1, "deposit", "in-A", "USD", Decimal(0)),
        JournalSum(2, "trade", "T-SET", "BTC", Decimal("0.00")),
        JournalSum(2, "trade", "T-SET", "USD", Decimal(0)),
    ),
    accounts=(
        AccountRow("A", "USD", Decimal(800), Decimal("800.0")),
        AccountRow("@external", "USD", None, Decimal(-1000)),
        AccountRow("B", "EUR", Decimal(0), Decimal(0)),
    ),
    audit=None,
)


def swap(rows: tuple[Row, ...], which: int, **changes: Any) -> tuple[Row, ...]:
    """`rows` with the one at `which` changed."""
    return tuple(replace(r, **changes) if i == which else r for i, r in enumerate(rows))


def breaks(snapshot: Snapshot, grace: timedelta = GRACE) -> list[tuple[str, str]]:
    return [(b.invariant, b.detail) for b in find_breaks(snapshot, grace)]


def test_a_consistent_snapshot_has_no_break() -> None:
    assert find_breaks(WORLD, GRACE) == []
    assert find_breaks(WORLD, timedelta(0)) == []


def test_a_last_look_open_past_its_deadline_and_the_grace_is_stuck() -> None:
    closing = replace(WORLD, orders=swap(WORLD.orders, 1, lastlook_deadline=NOW - GRACE / 2))
    assert breaks(closing) == []
    stuck = replace(WORLD, orders=swap(WORLD.orders, 1, lastlook_deadline=OLD))
    assert breaks(stuck) == [
        (
            "order_stuck_pending",
            "order R-PEND is still PENDING_CONFIRMATION; its last look closed at "
            "2026-01-07T11:50:00Z",
        )
    ]


def test_an_rfq_open_past_its_window_and_the_grace_is_not_expired() -> None:
    assert breaks(replace(WORLD, orders=swap(WORLD.orders, 0, rfq_expires_at=YOUNG))) == []
    late = replace(WORLD, orders=swap(WORLD.orders, 0, rfq_expires_at=OLD))
    assert breaks(late) == [
        ("rfq_not_expired", "rfq R-OPEN is still QUOTED; its window closed at 2026-01-07T11:50:00Z")
    ]


def test_frozen_and_used_must_be_what_frozen_and_committed_reservations_hold() -> None:
    drifted = replace(WORLD, lines=swap(WORLD.lines, 1, frozen=Decimal("50.5")))
    assert breaks(drifted) == [
        (
            "credit_line_mismatch",
            "credit line A with MM: frozen 50.5 but its FROZEN reservations hold 50; "
            "used 70 but its COMMITTED reservations hold 70 USD",
        )
    ]


def test_settled_and_failed_reservations_give_their_credit_back() -> None:
    # Counting RES-SET or RES-FAIL as used would show every line short of 200 or 30.
    still_used = replace(WORLD, lines=tuple(line(k, used="300") for k in KEYS))
    assert {b for b, _ in breaks(still_used)} == {"credit_line_mismatch"}
    assert len(breaks(still_used)) == len(KEYS)


def test_holds_on_a_line_that_does_not_exist_or_in_another_currency_are_named() -> None:
    missing = replace(WORLD, lines=WORLD.lines[1:])
    assert breaks(missing) == [
        (
            "credit_line_mismatch",
            "COMMITTED reservations hold 70 on credit line A, which does not exist",
        ),
        (
            "credit_line_mismatch",
            "FROZEN reservations hold 50 on credit line A, which does not exist",
        ),
    ]
    in_eur = replace(WORLD, lines=swap(WORLD.lines, 2, currency="EUR"))
    assert ("credit_line_mismatch", "credit line MM is in EUR but reservations hold USD on it") in (
        breaks(in_eur)
    )


def test_used_plus_frozen_may_not_exceed_the_limit() -> None:
    assert breaks(replace(WORLD, lines=swap(WORLD.lines, 0, limit=Decimal(120)))) == []
    over = replace(WORLD, lines=swap(WORLD.lines, 0, limit=Decimal("119.99")))
    assert breaks(over) == [
        (
            "credit_over_limit",
            "credit line A: used 70 + frozen 50 = 120 exceeds its limit 119.99 USD",
        )
    ]


def test_a_frozen_reservation_of_an_open_order_is_orphaned_once_past_its_deadline() -> None:
    stray = reservation("RES-STRAY", "R-OPEN", "FROZEN", at=YOUNG)
    young = replace(WORLD, reservations=(*WORLD.reservations, stray))
    assert breaks(young) == []
    # An accept may still be on its way for the open order until the freeze's deadline.
    waiting = replace(stray, updated_at=OLD, deadline=YOUNG)
    assert breaks(replace(WORLD, reservations=(*WORLD.reservations, waiting))) == []
    gone = replace(stray, updated_at=OLD, deadline=OLD)
    old = replace(WORLD, reservations=(*WORLD.reservations, gone))
    assert breaks(old) == [
        (
            "reservation_orphaned",
            "reservation RES-STRAY is FROZEN for rfq R-OPEN, but the order is QUOTED and "
            "holds no reservation",
        )
    ]


def test_a_committed_reservation_of_no_order_or_of_another_reservation_is_orphaned() -> None:
    nobody = reservation("RES-X", "R-NOBODY", "COMMITTED")
    other = reservation("RES-Y", "R-CONF", "SETTLED")
    found = breaks(replace(WORLD, reservations=(*WORLD.reservations, nobody, other)))
    assert found == [
        (
            "reservation_orphaned",
            "reservation RES-X is COMMITTED for rfq R-NOBODY, but there is no such order",
        ),
        (
            "reservation_orphaned",
            "reservation RES-Y is SETTLED for rfq R-CONF, but the order is CONFIRMED on "
            "reservation RES-CONF",
        ),
    ]


@pytest.mark.parametrize(
    ("order_state", "reservation_status", "consistent"),
    [
        ("PENDING_CONFIRMATION", "FROZEN", True),
        ("PENDING_CONFIRMATION", "COMMITTED", True),  # the Commit precedes the confirm
        ("PENDING_CONFIRMATION", "RELEASED", False),
        ("CONFIRMED", "COMMITTED", True),
        ("CONFIRMED", "SETTLED", False),  # risk_limits applied an outcome order_core never did
        ("CONFIRMED", "EXPIRED", False),
        ("SETTLED", "SETTLED", True),
        ("SETTLED", "COMMITTED", False),  # credit never freed
        ("SETTLED", "SETTLEMENT_FAILED", False),
        ("SETTLEMENT_FAILED", "SETTLEMENT_FAILED", True),
        ("SETTLEMENT_FAILED", "COMMITTED", False),
    ],
)
def test_an_order_and_its_reservation_move_in_step(
    order_state: str, reservation_status: str, consistent: bool
) -> None:
    pair = Snapshot(
        now=NOW,
        orders=(order("R", order_state, "RES", lastlook_deadline=LATER),),
        reservations=(reservation("RES", "R", reservation_status),),
        lines=(),
        trades=(),
        journal_sums=(),
        accounts=(),
        audit=None,
    )
    expected = (
        []
        if consistent
        else [
            (
                "reservation_state_mismatch",
                f"order R is {order_state} but its reservation RES is {reservation_status}",
            )
        ]
    )
    assert [b for b in breaks(pair) if b[0] != "trade_not_booked"] == expected
    # Either row changed within the grace: the other service may be about to follow.
    recent = replace(pair, reservations=(reservation("RES", "R", reservation_status, at=YOUNG),))
    assert [b for b in breaks(recent) if b[0] != "trade_not_booked"] == []


def test_an_order_that_holds_credit_needs_its_reservation() -> None:
    lost = replace(WORLD, reservations=WORLD.reservations[:2] + WORLD.reservations[3:])
    assert [b for b, _ in breaks(lost)] == ["credit_line_mismatch"] * 4 + [
        "reservation_state_mismatch"
    ]
    assert (
        "reservation_state_mismatch",
        "order R-CONF is CONFIRMED but its reservation RES-CONF does not exist",
    ) in breaks(lost)


def test_a_reservation_of_another_rfq_does_not_count() -> None:
    found = breaks(replace(WORLD, reservations=swap(WORLD.reservations, 3, rfq_id="R-ELSE")))
    assert (
        "reservation_state_mismatch",
        "order R-SET is SETTLED but its reservation RES-SET is SETTLED for rfq R-ELSE",
    ) in found


def test_a_confirmed_order_is_booked_within_the_grace_a_settled_one_at_once() -> None:
    unbooked = replace(WORLD, trades=WORLD.trades[1:])
    assert breaks(unbooked) == [
        ("trade_not_booked", "order R-CONF is CONFIRMED but settlement has no trade T-CONF for it")
    ]
    just_confirmed = replace(unbooked, orders=swap(WORLD.orders, 2, updated_at=YOUNG))
    assert breaks(just_confirmed) == []
    # order_core settles an order only on settlement's word: no trade is never in flight
    settled = replace(
        WORLD,
        orders=swap(WORLD.orders, 3, updated_at=YOUNG),
        reservations=swap(WORLD.reservations, 3, updated_at=YOUNG),
        trades=WORLD.trades[:1] + WORLD.trades[2:],
    )
    assert breaks(settled) == [
        ("trade_not_booked", "order R-SET is SETTLED but settlement has no trade T-SET for it")
    ]


def test_one_rfq_never_has_two_trades() -> None:
    again = replace(WORLD, trades=(*WORLD.trades, trade("T-AGAIN", "R-SET", "PENDING")))
    assert breaks(again) == [
        ("booking_without_trade", "trade T-AGAIN of rfq R-SET: the order's trade is T-SET"),
        ("trade_booked_twice", "rfq R-SET has 2 trades: T-AGAIN, T-SET"),
    ]


@pytest.mark.parametrize(
    ("rfq_id", "why"),
    [
        ("R-NOBODY", "there is no such order"),
        ("R-OPEN", "the order is QUOTED"),
        ("R-PEND", "the order is PENDING_CONFIRMATION"),
    ],
)
def test_a_booking_needs_a_confirmed_order(rfq_id: str, why: str) -> None:
    stray = replace(WORLD, trades=(*WORLD.trades, trade("T-STRAY", rfq_id, "PENDING")))
    assert breaks(stray) == [("booking_without_trade", f"trade T-STRAY of rfq {rfq_id}: {why}")]


def test_the_order_follows_its_trade_outcome_within_the_grace() -> None:
    settled = swap(WORLD.trades, 0, status="SETTLED", settled_at=YOUNG, journals=1)
    assert breaks(replace(WORLD, trades=settled)) == []
    long_settled = swap(WORLD.trades, 0, status="SETTLED", settled_at=OLD, journals=1)
    assert breaks(replace(WORLD, trades=long_settled)) == [
        ("trade_outcome_mismatch", "order R-CONF is CONFIRMED but its trade T-CONF is SETTLED")
    ]


@pytest.mark.parametrize(("which", "journals"), [(0, 1), (1, 0), (1, 2), (2, 1)])
def test_a_settled_trade_has_one_journal_and_others_none(which: int, journals: int) -> None:
    found = breaks(replace(WORLD, trades=swap(WORLD.trades, which, journals=journals)))
    t = WORLD.trades[which]
    expected = 1 if t.status == "SETTLED" else 0
    assert found == [
        (
            "trade_journal_mismatch",
            f"trade {t.trade_id} of rfq {t.rfq_id} is {t.status} with {journals} trade "
            f"journals, not {expected}",
        )
    ]


def test_every_journal_balances_per_asset() -> None:
    off = replace(
        WORLD, journal_sums=swap(WORLD.journal_sums, 2, total=Decimal("-0.000000000000000001"))
    )
    assert breaks(off) == [
        (
            "ledger_unbalanced",
            "journal 2 (trade T-SET): its USD postings sum to -0.000000000000000001, not 0",
        )
    ]


@pytest.mark.parametrize(
    ("account", "kept"),
    [
        (AccountRow("A", "USD", Decimal(801), Decimal(800)), "balance 801"),
        (AccountRow("A", "USD", None, Decimal(800)), "no balance row"),
    ],
)
def test_a_balance_is_the_sum_of_its_postings(account: AccountRow, kept: str) -> None:
    found = breaks(replace(WORLD, accounts=(account, *WORLD.accounts[1:])))
    assert found == [("balance_mismatch", f"account A USD has {kept} but its postings sum to 800")]


def test_a_broken_audit_trail_names_the_event() -> None:
    reason = "RFQ R-1's event 7 follows its event 5: event 6 missing"
    broken = replace(WORLD, audit=Finding("event", reason, log_index=9, rfq_id="R-1", rfq_seq=7))
    assert find_breaks(broken, GRACE) == [
        Break("audit_chain_broken", f"the audit trail does not hold: {reason}")
    ]


def test_breaks_come_sorted_so_the_same_books_give_the_same_list() -> None:
    both = replace(
        WORLD,
        audit=Finding("checkpoint", "x", tree_size=1),
        orders=swap(WORLD.orders, 0, rfq_expires_at=OLD),
    )
    assert [b for b, _ in breaks(both)] == ["audit_chain_broken", "rfq_not_expired"]
