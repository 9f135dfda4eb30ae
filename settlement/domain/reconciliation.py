"""Reconciliation of a trading day, as pure comparison of three services' books.

order_core says which trades it confirmed and how it believes they ended, and which
RFQs are still open; settlement has its instructions, journals, postings and
balances; risk_limits has the reservations holding used credit and the lines
using it. Each disagreement is a `Break` naming what broke and why. Scope: the
trades confirmed, settled or value-dated on the day, the journals value-dated on
it, every account, and all credit in use now.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal

from otc.money import fmt
from settlement.domain.credit_checks import credit_breaks, exposure
from settlement.domain.eod_report import AccountFigures, Break, Check, Report
from settlement.domain.ledger import (
    EXTERNAL,
    JournalKind,
    Posting,
    TradeStatus,
    dvp_postings,
    unbalanced_assets,
)
from settlement.domain.views import BookedTrade, Books, JournalView

# A disagreement younger than this may be a message still on its way.
IN_FLIGHT = timedelta(minutes=1)

# What order_core's state must be for each settlement status.
ORDER_STATE = {
    TradeStatus.PENDING: "CONFIRMED",
    TradeStatus.SETTLED: "SETTLED",
    TradeStatus.FAILED: "SETTLEMENT_FAILED",
}


def reconcile(books: Books) -> Report:
    booked = {t.trade.trade_id: t for t in books.trades}
    breaks = [
        *_trade_breaks(books, booked),
        *_journal_breaks(books.journals, booked),
        *_balance_breaks(books.accounts),
        *credit_breaks(books, booked, _recent(books.now)),
        *(
            Break(
                Check.RFQ_OPEN,
                f"rfq {r.rfq_id}",
                f"created at {_at(r.created_at)} and still {r.state} after the close",
            )
            for r in books.order.open_rfqs
        ),
    ]
    breaks.sort(key=lambda b: (b.check.value, b.subject, b.cause))
    in_scope = [booked[t] for t in _scope(books, booked) if t in booked]
    statuses = Counter(t.status for t in in_scope)
    return Report(
        day=books.day,
        summary={
            "trades_confirmed": sum(
                books.day.contains(t.confirmed_at) for t in books.order.trades.values()
            ),
            "trades_booked": len(in_scope),
            "settled": statuses[TradeStatus.SETTLED],
            "failed": statuses[TradeStatus.FAILED],
            "pending": statuses[TradeStatus.PENDING],
            "journals": len(books.journals),
            "committed_reservations": len(books.credit.reservations),
            "breaks": len(breaks),
        },
        totals=sorted(
            (a for a in books.accounts if a.opening or a.trades or a.funding),
            key=lambda a: (a.account.party, a.account.asset),
        ),
        exposure=exposure(books, booked),
        breaks=breaks,
    )


def _scope(books: Books, booked: Mapping[str, BookedTrade]) -> list[str]:
    day = books.day
    ids = {t for t, o in books.order.trades.items() if day.contains(o.confirmed_at)}
    for trade_id, b in booked.items():
        settled_on_day = b.settled_at is not None and day.contains(b.settled_at)
        if day.contains(b.confirmed_at) or b.value_date == day.date or settled_on_day:
            ids.add(trade_id)
    return sorted(ids)


def _trade_breaks(books: Books, booked: Mapping[str, BookedTrade]) -> Iterable[Break]:
    recent = _recent(books.now)
    for trade_id in _scope(books, booked):
        subject = f"trade {trade_id}"
        seen = books.order.trades.get(trade_id)
        b = booked.get(trade_id)
        if b is None:
            assert seen is not None
            yield Break(
                Check.TRADE_BOOKED,
                subject,
                f"confirmed by order_core at {_at(seen.confirmed_at)} (rfq {seen.rfq_id}) "
                "but never booked by settlement",
                in_flight=recent(seen.confirmed_at),
            )
            continue
        parties = f"{b.trade.buyer} buys from {b.trade.seller}"
        if seen is None:
            yield Break(
                Check.TRADE_CONFIRMED,
                subject,
                f"booked by settlement ({parties}, {b.status}) but never confirmed by order_core",
            )
        elif seen.state != ORDER_STATE[b.status]:
            lagging = seen.state == "CONFIRMED" and b.settled_at is not None
            yield Break(
                Check.TRADE_OUTCOME,
                subject,
                f"settlement has it {b.status}"
                + (f" ({b.reason})" if b.reason else "")
                + f" but order_core has it {seen.state}",
                in_flight=lagging and b.settled_at is not None and recent(b.settled_at),
            )
        yield from _outcome_breaks(books, b, subject)
        if b.status is TradeStatus.PENDING and b.value_date <= books.day.date:
            why = f": {b.reason}" if b.reason else ""
            yield Break(
                Check.INSTRUCTION_DUE,
                subject,
                f"value date {b.value_date} has come but it is still pending after "
                f"{b.attempts} attempt(s){why}",
                in_flight=b.next_attempt_at is not None,
            )


def _outcome_breaks(books: Books, b: BookedTrade, subject: str) -> Iterable[Break]:
    trade_id = b.trade.trade_id
    found = (
        books.journal_counts.get(trade_id, 0),
        books.announced.get(trade_id, Counter())["settled"],
        books.announced.get(trade_id, Counter())["failed"],
    )
    expected = {
        TradeStatus.SETTLED: (1, 1, 0),
        TradeStatus.FAILED: (0, 0, 1),
        TradeStatus.PENDING: (0, 0, 0),
    }[b.status]
    if found != expected:
        journals, settled, failed = found
        yield Break(
            Check.ONE_OUTCOME,
            subject,
            f"{b.status} with {journals} journal(s), {settled} TradeSettled and {failed} "
            f"SettlementFailed announced; expected {expected[0]}, {expected[1]} and "
            f"{expected[2]}",
        )


def _journal_breaks(
    journals: Iterable[JournalView], booked: Mapping[str, BookedTrade]
) -> Iterable[Break]:
    for j in journals:
        subject = f"journal {j.journal_id} ({j.kind} {j.reference})"
        for asset, total in unbalanced_assets(j.postings).items():
            yield Break(
                Check.JOURNAL_BALANCED,
                subject,
                f"its {asset} postings sum to {fmt(total)}, not 0",
                asset=asset,
            )
        if j.kind is not JournalKind.TRADE:
            continue
        b = booked.get(j.reference)
        if b is None:
            yield Break(Check.JOURNAL_MATCHES_TRADE, subject, "no such trade is booked")
            continue
        expected = Counter(dvp_postings(b.trade))
        found = Counter(j.postings)
        for p in sorted((expected - found).elements(), key=_posting_key):
            yield Break(
                Check.JOURNAL_MATCHES_TRADE,
                subject,
                f"posting {p.party} {p.asset} {fmt(p.amount)} is missing",
                party=p.party,
                asset=p.asset,
            )
        for p in sorted((found - expected).elements(), key=_posting_key):
            yield Break(
                Check.JOURNAL_MATCHES_TRADE,
                subject,
                f"posting {p.party} {p.asset} {fmt(p.amount)} is not the trade's",
                party=p.party,
                asset=p.asset,
            )


def _balance_breaks(accounts: Iterable[AccountFigures]) -> Iterable[Break]:
    for a in accounts:
        party, asset = a.account
        if party == EXTERNAL:
            continue
        ledger = a.closing + a.later
        movements = (
            f"opening {fmt(a.opening)} + trades {fmt(a.trades)} + funding {fmt(a.funding)}"
            f" + later {fmt(a.later)}"
        )
        if a.stored is None:
            cause = f"has postings summing to {fmt(ledger)} ({movements}) but no balance"
        elif a.stored != ledger:
            cause = (
                f"balance is {fmt(a.stored)} but its postings sum to {fmt(ledger)} ({movements})"
            )
        else:
            continue
        yield Break(Check.BALANCE, f"account {party} {asset}", cause, party=party, asset=asset)


def _recent(now: datetime) -> Callable[[datetime], bool]:
    return lambda moment: now - moment < IN_FLIGHT


def _posting_key(p: Posting) -> tuple[str, str, Decimal]:
    return (p.party, p.asset, p.amount)


def _at(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
