"""A small, consistent world of books across every schema, written into a scratch
database of its own, for the invariant checker's tests to break one row at a time.

The shared session database carries other tests' traffic (and trades some of them
make up on purpose), so the checker's tests never plant a bad row there: each one
gets a copy of a migrated template holding this world, made with
`CREATE DATABASE ... TEMPLATE`, which takes milliseconds where migrating takes
seconds.

    TRADER-A buys BTC from MM-1; credit lines (gross and bilateral, both ways) in USD
    R-OPEN   QUOTED, window open for an hour; an earlier accept's reservation RELEASED
    R-PEND   PENDING_CONFIRMATION on RES-PEND, FROZEN, holding 50 on each line
    R-CONF   CONFIRMED on RES-CONF, COMMITTED, holding 70; trade T-CONF PENDING
    R-SET    SETTLED on RES-SET, SETTLED; trade T-SET SETTLED with its DvP journal
    R-FAIL   SETTLEMENT_FAILED on RES-FAIL, SETTLEMENT_FAILED; trade T-FAIL FAILED
    ledger   deposits of 1000 USD (TRADER-A) and 5 BTC (MM-1), then T-SET: 2 BTC at 100
    audit    three chained events
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from order_core.adapters.audit import AuditLog
from order_core.adapters.tables import orders
from order_core.domain.audit import AuditRecord
from risk_limits.adapters.tables import bilateral_lines, credit_lines, reservations
from settlement.adapters.tables import balances, journals, ledger_entries, trades
from settlement.domain.ledger import EXTERNAL

TRADER, MAKER = "TRADER-A", "MM-1"
LIMIT = Decimal(1000)
FROZEN, USED = Decimal(50), Decimal(70)  # what RES-PEND and RES-CONF hold on every line
LINES = ((TRADER, ""), (TRADER, MAKER), (MAKER, ""), (MAKER, TRADER))


@asynccontextmanager
async def scratch_database(engine: AsyncEngine, template: str | None = None) -> AsyncIterator[str]:
    """A database of its own on `engine`'s server (a copy of `template`, if given),
    dropped on the way out; yields its URL."""
    database = f"invariants_{uuid.uuid4().hex[:12]}"
    copy = f' TEMPLATE "{template}"' if template else ""
    admin = await engine.execution_options(isolation_level="AUTOCOMMIT").connect()
    try:
        await admin.execute(text(f'CREATE DATABASE "{database}"{copy}'))
        try:
            yield engine.url.set(database=database).render_as_string(hide_password=False)
        finally:
            await admin.execute(text(f'DROP DATABASE "{database}" WITH (FORCE)'))
    finally:
        await admin.close()


def database_of(url: str) -> str:
    name = make_url(url).database
    assert name is not None
    return name


async def write_world(conn: AsyncConnection, now: datetime) -> None:
    old = now - timedelta(minutes=10)  # long past any grace
    later = now + timedelta(hours=1)
    await conn.execute(credit_lines.insert(), [line(p, c, old) for p, c in LINES if not c])
    await conn.execute(bilateral_lines.insert(), [line(p, c, old) for p, c in LINES if c])
    await conn.execute(
        orders.insert(),
        [
            order("R-OPEN", "QUOTED", old, expires=later),
            order("R-PEND", "PENDING_CONFIRMATION", old, "RES-PEND", lastlook=later),
            order("R-CONF", "CONFIRMED", old, "RES-CONF", trade="T-CONF"),
            order("R-SET", "SETTLED", old, "RES-SET", trade="T-SET"),
            order("R-FAIL", "SETTLEMENT_FAILED", old, "RES-FAIL", trade="T-FAIL"),
        ],
    )
    await conn.execute(
        reservations.insert(),
        [
            reservation("RES-GONE", "R-OPEN", "RELEASED", old, Decimal(10)),
            reservation("RES-PEND", "R-PEND", "FROZEN", old, FROZEN),
            reservation("RES-CONF", "R-CONF", "COMMITTED", old, USED),
            reservation("RES-SET", "R-SET", "SETTLED", old, Decimal(200)),
            reservation("RES-FAIL", "R-FAIL", "SETTLEMENT_FAILED", old, Decimal(30)),
        ],
    )
    await conn.execute(
        trades.insert(),
        [
            trade("T-CONF", "R-CONF", "PENDING", old, settled=None),
            trade("T-SET", "R-SET", "SETTLED", old, settled=old),
            trade("T-FAIL", "R-FAIL", "FAILED", old, settled=old),
        ],
    )
    await journal(conn, "deposit", "in-A", old, [(TRADER, "USD", 1000), (EXTERNAL, "USD", -1000)])
    await journal(conn, "deposit", "in-MM", old, [(MAKER, "BTC", 5), (EXTERNAL, "BTC", -5)])
    await journal(
        conn,
        "trade",
        "T-SET",
        old,
        [(TRADER, "BTC", 2), (MAKER, "BTC", -2), (TRADER, "USD", -200), (MAKER, "USD", 200)],
    )
    await conn.execute(
        balances.insert(),
        [
            {"party": TRADER, "asset": "USD", "amount": Decimal(800)},
            {"party": TRADER, "asset": "BTC", "amount": Decimal(2)},
            {"party": MAKER, "asset": "BTC", "amount": Decimal(3)},
            {"party": MAKER, "asset": "USD", "amount": Decimal(200)},
        ],
    )
    await AuditLog(conn).append([audit_record(rfq, old) for rfq in ("R-OPEN", "R-PEND", "R-SET")])


def line(party: str, counterparty: str, at: datetime) -> dict[str, Any]:
    row: dict[str, Any] = {"party": party, "currency": "USD", "credit_limit": LIMIT, "used": USED}
    row |= {"frozen": FROZEN, "updated_at": at}
    return {**row, "counterparty": counterparty} if counterparty else row


def order(
    rfq_id: str,
    state: str,
    at: datetime,
    reservation_id: str | None = None,
    *,
    expires: datetime | None = None,
    lastlook: datetime | None = None,
    trade: str | None = None,
) -> dict[str, Any]:
    return {
        "rfq_id": rfq_id,
        "requester": TRADER,
        "instrument": "BTC-USD",
        "side": "buy",
        "quantity": Decimal(2),
        "counterparties": [MAKER],
        "anonymous": False,
        "state": state,
        "version": 1,
        "rfq_expires_at": expires or at,
        "reservation_id": reservation_id,
        "lastlook_deadline": lastlook,
        "trade_id": trade,
        "created_at": at,
        "updated_at": at,
    }


def reservation(
    reservation_id: str, rfq_id: str, status: str, at: datetime, each_line: Decimal
) -> dict[str, Any]:
    holds = [
        {"party": p, "counterparty": c, "amount": str(each_line), "currency": "USD"}
        for p, c in LINES
    ]
    return {
        "reservation_id": reservation_id,
        "rfq_id": rfq_id,
        "status": status,
        "legs": [],
        "holds": holds,
        "request_hash": f"hash-{reservation_id}",
        "deadline": at + timedelta(seconds=30),
        "created_at": at,
        "updated_at": at,
    }


def trade(
    trade_id: str, rfq_id: str, status: str, at: datetime, *, settled: datetime | None
) -> dict[str, Any]:
    return {
        "trade_id": trade_id,
        "rfq_id": rfq_id,
        "instrument": "BTC-USD",
        "buyer": TRADER,
        "seller": MAKER,
        "quantity": Decimal(2),
        "price": Decimal(100),
        "notional": Decimal(200),
        "status": status,
        "booked_at": at,
        "confirmed_at": at,
        "value_date": at.date(),
        "settled_at": settled,
    }


async def journal(
    conn: AsyncConnection,
    kind: str,
    reference: str,
    at: datetime,
    postings: list[tuple[str, str, int]],
) -> None:
    journal_id = (
        await conn.execute(
            journals.insert()
            .values(kind=kind, reference=reference, value_date=at.date(), booked_at=at)
            .returning(journals.c.journal_id)
        )
    ).scalar_one()
    trade_id = reference if kind == "trade" else None
    await conn.execute(
        ledger_entries.insert(),
        [
            {
                "journal_id": journal_id,
                "trade_id": trade_id,
                "party": party,
                "asset": asset,
                "amount": Decimal(amount),
                "booked_at": at,
            }
            for party, asset, amount in postings
        ],
    )


def audit_record(rfq_id: str, at: datetime) -> AuditRecord:
    return AuditRecord(
        rfq_id=rfq_id,
        event_type="otc.v1.OrderStateChanged",
        occurred_at=at,
        producer="invariants-test",
        event_id=f"event-{rfq_id}",
        correlation_id=rfq_id,
        causation_id="",
        party=TRADER,
        payload={"rfq_id": rfq_id, "state": "QUOTED"},
    )
