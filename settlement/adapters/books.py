"""Settlement's side of the end-of-day reconciliation: read-only queries over its
own schema, meant for one REPEATABLE READ snapshot (a unit of work opened with
`snapshot=True`) so that trades, journals, postings and balances are read as of
one moment."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from otc.bus.envelope import InvalidMessage, decode
from otc.bus.topics import SETTLEMENT_EVENTS
from otc.contracts import events_pb2
from otc.instruments import INSTRUMENTS
from settlement.adapters.tables import OUTBOX_TABLES, balances, journals, ledger_entries, trades
from settlement.domain.eod_report import AccountFigures, TradingDay
from settlement.domain.ledger import Account, JournalKind, Posting, Trade, TradeStatus
from settlement.domain.views import BookedTrade, JournalView

# Outcome events are looked for this far before the earliest trade in scope.
OUTBOX_MARGIN = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class SettlementBooks:
    trades: list[BookedTrade]
    journals: list[JournalView]
    journal_counts: dict[str, int]
    announced: dict[str, Counter[str]]
    accounts: list[AccountFigures]


class BooksQueries:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def read(self, day: TradingDay) -> SettlementBooks:
        conn = self._conn
        booked = await _trades(conn, day)
        ids = [b.trade.trade_id for b in booked]
        return SettlementBooks(
            trades=booked,
            journals=await _journals(conn, day),
            journal_counts=await _journal_counts(conn, ids),
            announced=await _announced(conn, booked),
            accounts=await _accounts(conn, day),
        )


async def _trades(conn: AsyncConnection, day: TradingDay) -> list[BookedTrade]:
    t = trades.c
    rows = await conn.execute(
        select(trades)
        .where(
            or_(
                and_(t.confirmed_at >= day.start, t.confirmed_at < day.close),
                and_(t.settled_at >= day.start, t.settled_at < day.close),
                t.value_date == day.date,
                t.status == TradeStatus.PENDING.value,
            )
        )
        .order_by(t.trade_id)
    )
    return [
        BookedTrade(
            trade=Trade(
                trade_id=r.trade_id,
                rfq_id=r.rfq_id,
                instrument=INSTRUMENTS[r.instrument],
                buyer=r.buyer,
                seller=r.seller,
                quantity=r.quantity,
                price=r.price,
                notional=r.notional,
            ),
            status=TradeStatus(r.status),
            reason=r.reason,
            confirmed_at=r.confirmed_at,
            value_date=r.value_date,
            attempts=r.attempts,
            next_attempt_at=r.next_attempt_at,
            settled_at=r.settled_at,
        )
        for r in rows
    ]


async def _journals(conn: AsyncConnection, day: TradingDay) -> list[JournalView]:
    j, e = journals.c, ledger_entries.c
    rows = await conn.execute(
        select(j.journal_id, j.kind, j.reference, e.party, e.asset, e.amount)
        .select_from(journals.outerjoin(ledger_entries, e.journal_id == j.journal_id))
        .where(j.value_date == day.date)
        .order_by(j.journal_id, e.id)
    )
    found: dict[int, tuple[JournalKind, str, list[Posting]]] = {}
    for r in rows:
        _, _, postings = found.setdefault(r.journal_id, (JournalKind(r.kind), r.reference, []))
        if r.party is not None:
            postings.append(Posting(r.party, r.asset, r.amount))
    return [
        JournalView(journal_id, kind, reference, tuple(postings))
        for journal_id, (kind, reference, postings) in found.items()
    ]


async def _journal_counts(conn: AsyncConnection, trade_ids: list[str]) -> dict[str, int]:
    j = journals.c
    rows = await conn.execute(
        select(j.reference, func.count())
        .where(j.kind == JournalKind.TRADE.value, j.reference.in_(trade_ids))
        .group_by(j.reference)
    )
    return {r.reference: r[1] for r in rows}


async def _announced(conn: AsyncConnection, booked: list[BookedTrade]) -> dict[str, Counter[str]]:
    """Outcome events queued per trade id: the outbox keeps what was announced."""
    if not booked:
        return {}
    outbox = OUTBOX_TABLES.outbox.c
    since = min(b.confirmed_at for b in booked) - OUTBOX_MARGIN
    rfq_ids = sorted({b.trade.rfq_id for b in booked})
    rows = await conn.execute(
        select(outbox.payload).where(
            outbox.topic == SETTLEMENT_EVENTS,
            outbox.created_at >= since,
            outbox.key.in_(rfq_ids),
        )
    )
    announced: dict[str, Counter[str]] = {}
    for r in rows:
        try:
            payload = decode(r.payload).payload
        except InvalidMessage:
            continue
        if isinstance(payload, events_pb2.TradeSettled):
            announced.setdefault(payload.trade_id, Counter())["settled"] += 1
        elif isinstance(payload, events_pb2.SettlementFailed):
            announced.setdefault(payload.trade_id, Counter())["failed"] += 1
    return announced


async def _accounts(conn: AsyncConnection, day: TradingDay) -> list[AccountFigures]:
    """Every account's postings summed by value date against the day, beside its
    balance row (a full outer join: either may be missing)."""
    j, e = journals.c, ledger_entries.c
    on_day = j.value_date == day.date
    funding = j.kind.in_([JournalKind.DEPOSIT.value, JournalKind.WITHDRAWAL.value])

    def total(condition: ColumnElement[bool]) -> ColumnElement[Decimal]:
        return func.coalesce(func.sum(case((condition, e.amount), else_=0)), 0)

    movements = (
        select(
            e.party,
            e.asset,
            total(j.value_date < day.date).label("opening"),
            total(and_(on_day, j.kind == JournalKind.TRADE.value)).label("trades"),
            total(and_(on_day, funding)).label("funding"),
            total(j.value_date > day.date).label("later"),
        )
        .select_from(ledger_entries.join(journals, e.journal_id == j.journal_id))
        .group_by(e.party, e.asset)
        .subquery()
    )
    m, b = movements.c, balances.c
    rows = await conn.execute(
        select(
            func.coalesce(m.party, b.party).label("party"),
            func.coalesce(m.asset, b.asset).label("asset"),
            m.opening,
            m.trades,
            m.funding,
            m.later,
            b.amount,
        ).select_from(
            movements.outerjoin(balances, and_(b.party == m.party, b.asset == m.asset), full=True)
        )
    )
    zero = Decimal(0)
    return [
        AccountFigures(
            account=Account(r.party, r.asset),
            opening=zero if r.opening is None else r.opening,
            trades=zero if r.trades is None else r.trades,
            funding=zero if r.funding is None else r.funding,
            later=zero if r.later is None else r.later,
            stored=r.amount,
        )
        for r in rows
    ]
