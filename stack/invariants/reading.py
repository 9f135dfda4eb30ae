"""The SQL of the invariant checker: every service's books read in one read-only
REPEATABLE READ transaction, so that rows written by concurrent traffic can never
make two tables disagree in what it sees.

This is the one reader that crosses schemas on purpose: the services each keep
their own books, and the point of the check is to compare them as of one moment,
which only one snapshot of the shared database can do. Nothing here writes.

The audit trail is verified with order_core's own verifier (`verify_trail`, as
`/v1/audit/verify` runs it), inside this same snapshot: every RFQ's chain and the
log's Merkle roots against its checkpoints (signatures are the auditor API's to
check, with the service's key).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncConnection

from order_core.adapters.tables import orders
from order_core.domain.trail_verifier import Finding
from order_core.service_layer.audit_proofs import verify_trail
from risk_limits.adapters.tables import bilateral_lines, credit_lines, reservations
from risk_limits.domain.credit import GROSS, Hold, LineKey
from settlement.adapters.tables import balances, journals, ledger_entries, trades
from settlement.domain.ledger import JournalKind

from .snapshot import AccountRow, JournalSum, LineRow, OrderRow, ReservationRow, Snapshot, TradeRow

AUDIT_BATCH = 1000


async def read_snapshot(conn: AsyncConnection, now: datetime | None = None) -> Snapshot:
    """Reads the books over `conn`, which must be in a REPEATABLE READ transaction.
    Without `now`, the snapshot is judged as of its own transaction's start."""
    if now is None:
        now = (await conn.execute(select(func.now()))).scalar_one()
    return Snapshot(
        now=now,
        orders=await _orders(conn),
        reservations=await _reservations(conn),
        lines=await _lines(conn),
        trades=await _trades(conn),
        journal_sums=await _journal_sums(conn),
        accounts=await _accounts(conn),
        audit=await _audit(conn),
    )


async def _orders(conn: AsyncConnection) -> tuple[OrderRow, ...]:
    o = orders.c
    rows = await conn.execute(
        select(
            o.rfq_id,
            o.state,
            o.reservation_id,
            o.trade_id,
            o.rfq_expires_at,
            o.lastlook_deadline,
            o.updated_at,
        )
    )
    return tuple(OrderRow(**r._asdict()) for r in rows)


async def _reservations(conn: AsyncConnection) -> tuple[ReservationRow, ...]:
    r = reservations.c
    rows = await conn.execute(
        select(r.reservation_id, r.rfq_id, r.status, r.holds, r.updated_at, r.deadline)
    )
    return tuple(
        ReservationRow(
            reservation_id=row.reservation_id,
            rfq_id=row.rfq_id,
            status=row.status,
            holds=tuple(_hold(h) for h in row.holds),
            updated_at=row.updated_at,
            deadline=row.deadline,
        )
        for row in rows
    )


def _hold(stored: dict[str, Any]) -> Hold:
    """A hold as the reservation repository writes it (`_hold_json`): an empty
    counterparty names the party's gross line."""
    line = LineKey(stored["party"], stored["counterparty"])
    return Hold(line, Decimal(stored["amount"]), stored["currency"])


async def _lines(conn: AsyncConnection) -> tuple[LineRow, ...]:
    g, b = credit_lines.c, bilateral_lines.c
    both = union_all(
        select(
            g.party,
            literal(GROSS).label("counterparty"),
            g.currency,
            g.credit_limit,
            g.used,
            g.frozen,
        ),
        select(b.party, b.counterparty, b.currency, b.credit_limit, b.used, b.frozen),
    )
    return tuple(
        LineRow(
            key=LineKey(r.party, r.counterparty),
            currency=r.currency,
            limit=r.credit_limit,
            used=r.used,
            frozen=r.frozen,
        )
        for r in await conn.execute(both)
    )


async def _trades(conn: AsyncConnection) -> tuple[TradeRow, ...]:
    t, j = trades.c, journals.c
    booked_journals = (
        select(func.count())
        .where(j.kind == JournalKind.TRADE.value, j.reference == t.trade_id)
        .scalar_subquery()
    )
    rows = await conn.execute(
        select(
            t.trade_id,
            t.rfq_id,
            t.status,
            t.booked_at,
            t.settled_at,
            booked_journals.label("journals"),
        )
    )
    return tuple(TradeRow(**r._asdict()) for r in rows)


async def _journal_sums(conn: AsyncConnection) -> tuple[JournalSum, ...]:
    j, e = journals.c, ledger_entries.c
    rows = await conn.execute(
        select(j.journal_id, j.kind, j.reference, e.asset, func.sum(e.amount).label("total"))
        .select_from(ledger_entries.join(journals, e.journal_id == j.journal_id))
        .group_by(j.journal_id, j.kind, j.reference, e.asset)
    )
    return tuple(JournalSum(**r._asdict()) for r in rows)


async def _accounts(conn: AsyncConnection) -> tuple[AccountRow, ...]:
    """Every account's postings beside its balance row (a full outer join: either
    may be missing)."""
    e, b = ledger_entries.c, balances.c
    posted = (
        select(e.party, e.asset, func.sum(e.amount).label("total"))
        .group_by(e.party, e.asset)
        .subquery()
    )
    p = posted.c
    rows = await conn.execute(
        select(
            func.coalesce(p.party, b.party).label("party"),
            func.coalesce(p.asset, b.asset).label("asset"),
            b.amount,
            p.total,
        ).select_from(
            posted.outerjoin(balances, (b.party == p.party) & (b.asset == p.asset), full=True)
        )
    )
    return tuple(
        AccountRow(
            party=r.party,
            asset=r.asset,
            balance=r.amount,
            postings=Decimal(0) if r.total is None else r.total,
        )
        for r in rows
    )


async def _audit(conn: AsyncConnection) -> Finding | None:
    return (await verify_trail(conn, None, batch_size=AUDIT_BATCH)).finding
