"""The reconciliation rules over hand-made books, with no server: clean books give
no break, and each kind of damage gives the break that names it."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from otc.instruments import INSTRUMENTS
from settlement.domain.eod_report import AccountFigures, Check, TradingDay
from settlement.domain.ledger import (
    EXTERNAL,
    Account,
    JournalKind,
    Trade,
    TradeStatus,
    dvp_postings,
    funding_postings,
)
from settlement.domain.reconciliation import reconcile
from settlement.domain.views import (
    BookedTrade,
    Books,
    CommittedView,
    CreditLegView,
    CreditView,
    JournalView,
    LineView,
    OpenRfq,
    OrderTrade,
    OrderView,
)

DAY = TradingDay(date(2026, 1, 7))
NOON = datetime(2026, 1, 7, 12, tzinfo=UTC)
AFTER_CLOSE = DAY.close + timedelta(minutes=30)
BTC = INSTRUMENTS["BTC-USD"]
SETTLED_TRADE = Trade("T-1", "R-1", BTC, "BUYER", "SELLER", Decimal(2), Decimal(100), Decimal(200))
PENDING_TRADE = Trade("T-2", "R-2", BTC, "SELLER", "BUYER", Decimal(1), Decimal(100), Decimal(100))


def booked(trade: Trade, status: TradeStatus, **over: Any) -> BookedTrade:
    values: dict[str, Any] = {
        "trade": trade,
        "status": status,
        "reason": "",
        "confirmed_at": NOON,
        "value_date": DAY.date if status is not TradeStatus.PENDING else date(2026, 1, 8),
        "attempts": 1 if status is not TradeStatus.PENDING else 0,
        "next_attempt_at": None,
        "settled_at": NOON if status is not TradeStatus.PENDING else None,
    }
    return BookedTrade(**(values | over))


def legs(trade: Trade) -> tuple[CreditLegView, ...]:
    return tuple(
        CreditLegView(p, c, trade.notional, "USD")
        for p, c in ((trade.buyer, trade.seller), (trade.seller, trade.buyer))
    )


def clean_books() -> Books:
    """A day with one trade settled (T-1) and one waiting for its value date (T-2)."""
    deposit = funding_postings("BUYER", "USD", Decimal(1000)) + funding_postings(
        "SELLER", "BTC", Decimal(10)
    )
    holds = legs(PENDING_TRADE) + tuple(
        CreditLegView(p, "", Decimal(100), "USD") for p in ("BUYER", "SELLER")
    )
    return Books(
        day=DAY,
        now=AFTER_CLOSE,
        order=OrderView(
            trades={
                "T-1": OrderTrade("T-1", "R-1", "SETTLED", NOON),
                "T-2": OrderTrade("T-2", "R-2", "CONFIRMED", NOON),
            },
            open_rfqs=[],
        ),
        trades=[
            booked(SETTLED_TRADE, TradeStatus.SETTLED),
            booked(PENDING_TRADE, TradeStatus.PENDING),
        ],
        journals=[
            JournalView(1, JournalKind.DEPOSIT, "opening", deposit),
            JournalView(2, JournalKind.TRADE, "T-1", dvp_postings(SETTLED_TRADE)),
        ],
        journal_counts={"T-1": 1},
        announced={"T-1": Counter(settled=1)},
        accounts=[
            figures("BUYER", "USD", funding=1000, trades=-200, stored=800),
            figures("BUYER", "BTC", trades=2, stored=2),
            figures("SELLER", "USD", trades=200, stored=200),
            figures("SELLER", "BTC", funding=10, trades=-2, stored=8),
            figures(EXTERNAL, "USD", funding=-1000, stored=None),
            figures(EXTERNAL, "BTC", funding=-10, stored=None),
        ],
        credit=CreditView(
            reservations=[CommittedView("RES-2", "R-2", legs(PENDING_TRADE), holds, NOON)],
            lines=[
                LineView("BUYER", "", "USD", Decimal(100)),
                LineView("BUYER", "SELLER", "USD", Decimal(100)),
                LineView("SELLER", "", "USD", Decimal(100)),
                LineView("SELLER", "BUYER", "USD", Decimal(100)),
            ],
        ),
    )


def figures(party: str, asset: str, *, stored: int | None, **moves: int) -> AccountFigures:
    amounts = {k: Decimal(moves.get(k, 0)) for k in ("opening", "trades", "funding", "later")}
    return AccountFigures(
        Account(party, asset), **amounts, stored=None if stored is None else Decimal(stored)
    )


def breaks_of(books: Books) -> list[tuple[str, str, str]]:
    return [(b.check.value, b.subject, b.cause) for b in reconcile(books).breaks]


def test_clean_books_reconcile_with_totals_per_party_and_asset() -> None:
    report = reconcile(clean_books())
    assert report.breaks == []
    assert report.ok
    assert report.summary["settled"] == 1
    assert report.summary["pending"] == 1
    totals = {(t.account.party, t.account.asset): t.closing for t in report.totals}
    assert totals[("BUYER", "USD")] == 800
    assert totals[(EXTERNAL, "BTC")] == -10
    exposure = {(e.party, e.currency): (e.unsettled_notional, e.committed) for e in report.exposure}
    assert exposure == {("BUYER", "USD"): (100, 100), ("SELLER", "USD"): (100, 100)}


def test_a_removed_posting_unbalances_its_journal_and_its_account() -> None:
    books = clean_books()
    postings = dvp_postings(SETTLED_TRADE)
    damaged = JournalView(2, JournalKind.TRADE, "T-1", postings[1:])  # the buyer's BTC is gone
    accounts = [
        dataclasses.replace(a, trades=Decimal(0)) if a.account == Account("BUYER", "BTC") else a
        for a in books.accounts
    ]
    found = breaks_of(
        dataclasses.replace(books, journals=[books.journals[0], damaged], accounts=accounts)
    )
    assert (
        "journal_balanced",
        "journal 2 (trade T-1)",
        "its BTC postings sum to -2, not 0",
    ) in found
    assert (
        "journal_matches_trade",
        "journal 2 (trade T-1)",
        "posting BUYER BTC 2 is missing",
    ) in found
    assert (
        "balance",
        "account BUYER BTC",
        "balance is 2 but its postings sum to 0 (opening 0 + trades 0 + funding 0 + later 0)",
    ) in found


def test_a_trade_order_core_confirmed_but_settlement_never_booked() -> None:
    books = clean_books()
    order = dict(books.order.trades) | {"T-3": OrderTrade("T-3", "R-3", "CONFIRMED", NOON)}
    found = reconcile(dataclasses.replace(books, order=OrderView(order, [])))
    [missing] = found.breaks
    assert missing.check is Check.TRADE_BOOKED
    assert missing.subject == "trade T-3"
    assert "never booked by settlement" in missing.cause
    assert not missing.in_flight  # confirmed hours before this run


def test_a_trade_settlement_booked_but_order_core_never_confirmed() -> None:
    books = clean_books()
    order = {k: v for k, v in books.order.trades.items() if k != "T-1"}
    [(check, subject, cause)] = breaks_of(dataclasses.replace(books, order=OrderView(order, [])))
    assert (check, subject) == ("trade_confirmed", "trade T-1")
    assert "BUYER buys from SELLER" in cause


def test_an_outcome_order_core_has_not_applied_is_a_break_in_flight_while_recent() -> None:
    books = clean_books()
    order = dict(books.order.trades) | {"T-1": OrderTrade("T-1", "R-1", "CONFIRMED", NOON)}
    stale = dataclasses.replace(books, order=OrderView(order, []))
    [lagging] = reconcile(stale).breaks
    assert lagging.check is Check.TRADE_OUTCOME
    assert lagging.cause == "settlement has it SETTLED but order_core has it CONFIRMED"
    assert not lagging.in_flight
    assert (
        reconcile(dataclasses.replace(stale, now=NOON + timedelta(seconds=5))).breaks[0].in_flight
    )


def test_a_trade_announced_twice_or_settled_without_a_journal_is_not_one_outcome() -> None:
    books = clean_books()
    twice = dataclasses.replace(books, announced={"T-1": Counter(settled=2)})
    assert breaks_of(twice) == [
        (
            "one_outcome",
            "trade T-1",
            "SETTLED with 1 journal(s), 2 TradeSettled and 0 SettlementFailed announced; "
            "expected 1, 1 and 0",
        )
    ]
    no_journal = dataclasses.replace(books, journal_counts={})
    assert [b[0] for b in breaks_of(no_journal)] == ["one_outcome"]


def test_an_instruction_due_but_still_pending_is_a_break() -> None:
    books = clean_books()
    due = booked(PENDING_TRADE, TradeStatus.PENDING, value_date=DAY.date, reason="insufficient BTC")
    found = reconcile(dataclasses.replace(books, trades=[books.trades[0], due]))
    [b] = [b for b in found.breaks if b.check is Check.INSTRUCTION_DUE]
    assert b.cause == (
        "value date 2026-01-07 has come but it is still pending after 0 attempt(s): "
        "insufficient BTC"
    )


def test_credit_still_used_after_the_trade_settled_is_a_break() -> None:
    books = clean_books()
    leak = CommittedView("RES-1", "R-1", legs(SETTLED_TRADE), (), NOON)
    credit = CreditView([*books.credit.reservations, leak], books.credit.lines)
    found = breaks_of(dataclasses.replace(books, credit=credit))
    assert (
        "credit_freed",
        "reservation RES-1",
        "still uses credit though trade T-1 is SETTLED",
    ) in found


def test_a_trade_waiting_to_settle_must_hold_its_notional() -> None:
    books = clean_books()
    assert breaks_of(dataclasses.replace(books, credit=CreditView([], []))) == [
        ("credit_held", "trade T-2", "waits to settle but no credit is committed for rfq R-2")
    ]
    short = CreditLegView("SELLER", "BUYER", Decimal(90), "USD")
    wrong = CommittedView("RES-2", "R-2", (legs(PENDING_TRADE)[0], short), (), NOON)
    found = breaks_of(dataclasses.replace(books, credit=CreditView([wrong], [])))
    assert (
        "credit_held",
        "trade T-2",
        "SELLER holds 90 USD for it but its notional is 100 USD",
    ) in found


def test_a_line_using_more_than_its_reservations_hold_is_a_break() -> None:
    books = clean_books()
    lines = [*books.credit.lines[:-1], LineView("SELLER", "BUYER", "USD", Decimal(130))]
    found = breaks_of(
        dataclasses.replace(books, credit=CreditView(books.credit.reservations, lines))
    )
    assert found == [
        (
            "line_used",
            "line SELLER with BUYER",
            "uses 130 USD but its committed reservations hold 100",
        )
    ]


def test_an_rfq_still_open_after_the_close_is_a_break() -> None:
    books = clean_books()
    order = OrderView(books.order.trades, [OpenRfq("R-9", NOON, "QUOTED")])
    assert breaks_of(dataclasses.replace(books, order=order)) == [
        ("rfq_open", "rfq R-9", "created at 2026-01-07T12:00:00Z and still QUOTED after the close")
    ]


def test_the_report_is_the_same_for_the_same_books_and_carries_no_run_time() -> None:
    books = clean_books()
    first = reconcile(books)
    later = reconcile(dataclasses.replace(books, now=AFTER_CLOSE + timedelta(hours=3)))
    assert json.dumps(first.as_dict()) == json.dumps(later.as_dict())
    assert first.as_dict()["window"] == {
        "start": "2026-01-07T00:00:00Z",
        "close": "2026-01-08T00:00:00Z",
    }
    rows = first.csv_rows()
    assert rows[0][:3] == ["row", "party", "asset"]
    assert ["total", "BUYER", "USD", "0", "-200", "1000", "800", "", "", ""] in rows


def test_credit_committed_for_no_trade_is_a_break_in_flight_only_while_recent() -> None:
    books = clean_books()
    orphan = CommittedView("RES-9", "R-9", legs(PENDING_TRADE), (), NOON)
    credit = CreditView([*books.credit.reservations, orphan], books.credit.lines)
    [b] = [
        b
        for b in reconcile(dataclasses.replace(books, credit=credit)).breaks
        if b.check is Check.CREDIT_FREED
    ]
    assert (b.subject, b.cause) == (
        "reservation RES-9",
        "uses credit for rfq R-9, which has no trade waiting to settle",
    )
    assert not b.in_flight
    just_now = dataclasses.replace(books, credit=credit, now=NOON + timedelta(seconds=2))
    assert [b.in_flight for b in reconcile(just_now).breaks if b.check is Check.CREDIT_FREED] == [
        True
    ]
