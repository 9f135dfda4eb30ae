"""The invariant checker on real PostgreSQL: clean on a consistent world, naming each
invariant once one row of that world is broken behind the services' backs; clean on
the live platform after a deal; and `otc check`'s exit codes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner, Result

from otc.db import make_engine
from otc.ids import new_id
from otc.migrate import upgrade
from stack.cli import app
from stack.client import TraderClient
from stack.demo import best_quote
from stack.infra.platform import Platform
from stack.invariants import check_invariants
from tests.e2e_helpers import base_url, token_for
from tests.invariant_world import database_of, scratch_database, write_world

GRACE = timedelta(seconds=30)
OLD = timedelta(minutes=10)  # older than the grace: judged


@pytest.fixture(scope="module")
async def template(engine: AsyncEngine) -> AsyncIterator[str]:
    """A migrated database holding the consistent world, to copy for each test."""
    async with scratch_database(engine) as url:
        await upgrade(url)
        world = make_engine(url, pool_size=1)
        try:
            async with world.begin() as conn:
                await write_world(conn, datetime.now(UTC))
        finally:
            await world.dispose()  # a template may have no connections left
        yield database_of(url)


@pytest.fixture
async def scratch(engine: AsyncEngine, template: str) -> AsyncIterator[AsyncEngine]:
    """A copy of the consistent world, for one test to break."""
    async with scratch_database(engine, template) as url:
        copy = make_engine(url, pool_size=2)
        try:
            yield copy
        finally:
            await copy.dispose()


async def execute(engine: AsyncEngine, *statements: TextClause) -> None:
    async with engine.begin() as conn:
        for statement in statements:
            await conn.execute(statement)


def sql(statement: str, age: timedelta = OLD, **params: object) -> TextClause:
    """A statement whose `:ago` is `age` ago by the database's clock."""
    if ":ago" in statement:
        params["age"] = age
    return text(statement.replace(":ago", "(now() - :age)")).bindparams(**params)


def reservation(reservation_id: str, rfq_id: str, status: str, age: timedelta = OLD) -> TextClause:
    return sql(
        "INSERT INTO risk.reservations (reservation_id, rfq_id, status, legs, holds,"
        " request_hash, deadline, created_at, updated_at)"
        " VALUES (:id, :rfq, :status, '[]', '[]', 'h', :ago, :ago, :ago)",
        age=age,
        id=reservation_id,
        rfq=rfq_id,
        status=status,
    )


def stray_trade(trade_id: str, rfq_id: str) -> TextClause:
    return sql(
        "INSERT INTO settlement.trades (trade_id, rfq_id, instrument, buyer, seller, quantity,"
        " price, notional, status, booked_at, confirmed_at, value_date) VALUES (:id, :rfq,"
        " 'BTC-USD', 'TRADER-A', 'MM-1', 1, 1, 1, 'PENDING', :ago, :ago, current_date)",
        id=trade_id,
        rfq=rfq_id,
    )


# Each way of breaking the world: the statements, the invariants then broken, and a
# piece of what the break must say.
BREAKS: dict[str, tuple[list[TextClause], set[str], str]] = {
    "order_stuck_pending": (
        [sql("UPDATE order_core.orders SET lastlook_deadline = :ago WHERE rfq_id = 'R-PEND'")],
        {"order_stuck_pending"},
        "order R-PEND is still PENDING_CONFIRMATION; its last look closed at",
    ),
    "rfq_not_expired": (
        [sql("UPDATE order_core.orders SET rfq_expires_at = :ago WHERE rfq_id = 'R-OPEN'")],
        {"rfq_not_expired"},
        "rfq R-OPEN is still QUOTED; its window closed at",
    ),
    "frozen_not_held": (
        [sql("UPDATE risk.credit_lines SET frozen = frozen + 1 WHERE party = 'TRADER-A'")],
        {"credit_line_mismatch"},
        "credit line TRADER-A: frozen 51 but its FROZEN reservations hold 50",
    ),
    "used_not_held": (
        [sql("UPDATE risk.bilateral_lines SET used = used - 1 WHERE party = 'MM-1'")],
        {"credit_line_mismatch"},
        "used 69 but its COMMITTED reservations hold 70 USD",
    ),
    "over_limit": (
        [sql("UPDATE risk.credit_lines SET credit_limit = 100 WHERE party = 'MM-1'")],
        {"credit_over_limit"},
        "credit line MM-1: used 70 + frozen 50 = 120 exceeds its limit 100 USD",
    ),
    "frozen_orphan": (
        [reservation("RES-STRAY", "R-OPEN", "FROZEN")],
        {"reservation_orphaned"},
        "reservation RES-STRAY is FROZEN for rfq R-OPEN, but the order is QUOTED",
    ),
    "committed_orphan": (
        [reservation("RES-NOBODY", "R-NOBODY", "COMMITTED")],
        {"reservation_orphaned"},
        "RES-NOBODY is COMMITTED for rfq R-NOBODY, but there is no such order",
    ),
    "reservation_state_mismatch": (
        [sql("UPDATE risk.reservations SET status = 'SETTLEMENT_FAILED' WHERE rfq_id = 'R-SET'")],
        {"reservation_state_mismatch"},
        "order R-SET is SETTLED but its reservation RES-SET is SETTLEMENT_FAILED",
    ),
    "posting_added": (
        [
            sql(
                "INSERT INTO settlement.ledger_entries (journal_id, party, asset, amount,"
                " booked_at) SELECT journal_id, 'TRADER-A', 'USD', 1, now()"
                " FROM settlement.journals WHERE reference = 'in-A'"
            ),
            sql(
                "UPDATE settlement.balances SET amount = amount + 1"
                " WHERE party = 'TRADER-A' AND asset = 'USD'"
            ),
        ],
        {"ledger_unbalanced"},
        "(deposit in-A): its USD postings sum to 1, not 0",
    ),
    "balance_mismatch": (
        [sql("UPDATE settlement.balances SET amount = 4 WHERE party = 'MM-1' AND asset = 'BTC'")],
        {"balance_mismatch"},
        "account MM-1 BTC has balance 4 but its postings sum to 3",
    ),
    "trade_not_booked": (
        [
            sql(
                "INSERT INTO order_core.orders (rfq_id, requester, instrument, side, quantity,"
                " counterparties, anonymous, state, version, rfq_expires_at, reservation_id,"
                " trade_id, created_at, updated_at) VALUES ('R-LOST', 'TRADER-A', 'BTC-USD',"
                " 'buy', 1, '{MM-1}', false, 'CONFIRMED', 1, :ago, 'RES-LOST', 'T-LOST', :ago,"
                " :ago)"
            ),
            reservation("RES-LOST", "R-LOST", "COMMITTED"),
        ],
        {"trade_not_booked"},
        "order R-LOST is CONFIRMED but settlement has no trade T-LOST",
    ),
    "trade_booked_twice": (
        [stray_trade("T-AGAIN", "R-CONF")],
        {"trade_booked_twice", "booking_without_trade"},
        "rfq R-CONF has 2 trades: T-AGAIN, T-CONF",
    ),
    "booking_without_trade": (
        [stray_trade("T-STRAY", "R-OPEN")],
        {"booking_without_trade"},
        "trade T-STRAY of rfq R-OPEN: the order is QUOTED",
    ),
    "trade_outcome_mismatch": (
        [
            sql(
                "UPDATE settlement.trades SET status = 'FAILED', settled_at = :ago"
                " WHERE trade_id = 'T-CONF'"
            )
        ],
        {"trade_outcome_mismatch"},
        "order R-CONF is CONFIRMED but its trade T-CONF is FAILED",
    ),
    "trade_journal_mismatch": (
        [
            sql(
                "INSERT INTO settlement.journals (kind, reference, value_date, booked_at)"
                " VALUES ('trade', 'T-CONF', current_date, now())"
            )
        ],
        {"trade_journal_mismatch"},
        "trade T-CONF of rfq R-CONF is PENDING with 1 trade journals, not 0",
    ),
    "audit_chain_broken": (
        [
            sql(
                "INSERT INTO order_core.audit_events (rfq_id, rfq_seq, event_type, occurred_at,"
                " producer, event_id, correlation_id, causation_id, party, payload, prev_hash,"
                " hash) SELECT rfq_id, rfq_seq + 1, 'otc.v1.OrderStateChanged', now(), 'forger',"
                " 'e-forged', rfq_id, '', 'TRADER-A', '{}', hash, repeat('f', 64)"
                " FROM order_core.audit_events WHERE rfq_id = 'R-OPEN'"
            )
        ],
        {"audit_chain_broken"},
        "the audit trail does not hold: RFQ R-OPEN's event 2 stores hash ffff",
    ),
}


async def test_a_consistent_world_has_no_break(scratch: AsyncEngine) -> None:
    assert await check_invariants(scratch) == []
    assert await check_invariants(scratch, grace=timedelta(0)) == []


@pytest.mark.parametrize("case", sorted(BREAKS))
async def test_each_broken_invariant_is_named(scratch: AsyncEngine, case: str) -> None:
    statements, invariants, detail = BREAKS[case]
    await execute(scratch, *statements)

    found = await check_invariants(scratch, grace=GRACE)

    assert {b.invariant for b in found} == invariants, found
    assert any(detail in b.detail for b in found), found


async def test_the_same_books_give_the_same_breaks_in_the_same_order(
    scratch: AsyncEngine,
) -> None:
    for case in ("committed_orphan", "frozen_not_held", "rfq_not_expired", "posting_added"):
        await execute(scratch, *BREAKS[case][0])

    first = await check_invariants(scratch, grace=GRACE)
    await asyncio.sleep(0.2)

    assert len(first) >= 4
    assert await check_invariants(scratch, grace=GRACE) == first


async def test_a_disagreement_younger_than_the_grace_is_not_yet_a_break(
    scratch: AsyncEngine,
) -> None:
    await execute(scratch, reservation("RES-NEW", "R-OPEN", "FROZEN", age=timedelta(0)))

    assert await check_invariants(scratch, grace=GRACE) == []
    [orphan] = await check_invariants(scratch, grace=timedelta(0))
    assert orphan.invariant == "reservation_orphaned"
    later = datetime.now(UTC) + 2 * GRACE
    assert await check_invariants(scratch, grace=GRACE, now=later) == [orphan]


async def test_the_snapshot_is_judged_by_the_database_clock_by_default(
    scratch: AsyncEngine,
) -> None:
    await execute(scratch, *BREAKS["order_stuck_pending"][0])

    assert [b.invariant for b in await check_invariants(scratch)] == ["order_stuck_pending"]
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    assert await check_invariants(scratch, now=an_hour_ago) == []


async def run_check(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, url: str, *args: str
) -> Result:
    monkeypatch.setenv("OTC_DATABASE_URL", url)
    monkeypatch.setenv("OTC_STATE_DIR", str(tmp_path))
    # In a thread: the command runs its own event loop, as it does from a shell.
    return await asyncio.to_thread(lambda: CliRunner().invoke(app, ["check", *args]))


async def test_otc_check_exits_0_when_clean_and_1_naming_each_break(
    scratch: AsyncEngine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = scratch.url.render_as_string(hide_password=False)

    clean = await run_check(monkeypatch, tmp_path, url)
    assert (clean.exit_code, clean.stdout.strip()) == (0, "invariants hold"), clean.output

    await execute(scratch, *BREAKS["over_limit"][0], *BREAKS["frozen_orphan"][0])
    broken = await run_check(monkeypatch, tmp_path, url, "--grace-s", "5")
    assert broken.exit_code == 1, broken.output
    assert "credit_over_limit: credit line MM-1: used 70 + frozen 50" in broken.stdout
    assert "reservation_orphaned: reservation RES-STRAY is FROZEN" in broken.stdout

    as_json = await run_check(monkeypatch, tmp_path, url, "--json")
    assert as_json.exit_code == 1, as_json.output
    report = json.loads(as_json.stdout)
    assert report["ok"] is False
    assert {b["invariant"] for b in report["breaks"]} == {
        "credit_over_limit",
        "reservation_orphaned",
    }


async def test_otc_check_exits_2_without_a_database(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("OTC_DATABASE_URL", raising=False)
    monkeypatch.setenv("OTC_STATE_DIR", str(tmp_path))
    result = await asyncio.to_thread(lambda: CliRunner().invoke(app, ["check"]))
    assert result.exit_code == 2
    assert "OTC_DATABASE_URL is not set" in result.output


async def test_a_deal_through_the_live_platform_leaves_every_invariant_holding(
    platform: Platform, engine: AsyncEngine
) -> None:
    """The session database also holds what other tests left on purpose (trades booked
    with no order, reservations frozen for no RFQ), so the proof is that this deal
    adds no break: every break found afterwards was there before it. The check
    before judges every row (no grace); the one after gives a short grace once the
    deal has come to rest, so it judges this deal's rows too."""
    rest = timedelta(seconds=2)
    before = set(await check_invariants(engine, grace=timedelta(0)))
    async with TraderClient(base_url(platform), token_for(platform, "TRADER-A")) as trader:
        rfq = await trader.create_rfq(
            client_rfq_id=new_id(), instrument="ETH-USD", side="buy", quantity="1"
        )
        rfq_id = rfq["rfq_id"]
        quotes = await trader.wait_quotes(rfq_id, count=3)
        status, body = await trader.accept(rfq_id, best_quote(quotes, "buy")["quote_id"])
        assert status == 200, body
        final = await trader.wait_status(rfq_id, "SETTLED", "SETTLEMENT_FAILED", timeout=20)
    assert final == "SETTLED"
    await reservation_settled(engine, rfq_id)
    await asyncio.sleep(rest.total_seconds() + 0.5)

    after = await check_invariants(engine, grace=rest)

    assert [b for b in after if b not in before] == []
    assert not [b for b in after if rfq_id in b.detail]


async def reservation_settled(engine: AsyncEngine, rfq_id: str, timeout: float = 20.0) -> None:
    """risk_limits frees the credit of a settled trade on its own time."""
    deadline = time.monotonic() + timeout
    while True:
        async with engine.connect() as conn:
            statuses = (
                await conn.execute(
                    text("SELECT status FROM risk.reservations WHERE rfq_id = :r"), {"r": rfq_id}
                )
            ).scalars()
            if "SETTLED" in set(statuses):
                return
        assert time.monotonic() < deadline, f"reservation of {rfq_id} not settled"
        await asyncio.sleep(0.1)
