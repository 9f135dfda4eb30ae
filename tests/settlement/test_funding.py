"""Funding and blocked accounts on real PostgreSQL, through the service layer and
the `otc ledger` command; and a ledger the database keeps append-only."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from decimal import Decimal

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from otc.errors import Conflict, NotFound, ValidationFailed
from settlement.adapters.tables import journals, ledger_entries
from settlement.domain.ledger import EXTERNAL, Account
from settlement.service_layer import funding
from stack.infra.provider import Endpoints
from tests.settlement.helpers import balances_of, demo, funded_parties, uow


async def postings_of(engine: AsyncEngine, kind: str, reference: str) -> dict[str, Decimal]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(ledger_entries.c.party, ledger_entries.c.amount)
            .join(journals, journals.c.journal_id == ledger_entries.c.journal_id)
            .where(journals.c.kind == kind, journals.c.reference == reference)
        )
        return {r.party: r.amount for r in rows}


async def test_a_deposit_is_a_journal_against_the_outside_world_booked_once(
    engine: AsyncEngine,
) -> None:
    party, _ = await funded_parties(engine)
    ref = f"wire-{uuid.uuid4()}"

    first = await funding.deposit(uow(engine), party, "USD", "250.50", ref, "wire in")
    again = await funding.deposit(uow(engine), party, "USD", "250.5", ref, "wire in")  # same move

    assert (first.booked, again.booked) == (True, False)
    assert (await balances_of(engine, party))[Account(party, "USD")] == demo("USD") + Decimal(
        "250.50"
    )
    assert await postings_of(engine, "deposit", ref) == {
        party: Decimal("250.50"),
        EXTERNAL: Decimal("-250.50"),
    }
    with pytest.raises(Conflict, match="another deposit"):
        await funding.deposit(uow(engine), party, "USD", "999", ref)


async def test_a_withdrawal_beyond_the_balance_is_refused_and_moves_nothing(
    engine: AsyncEngine,
) -> None:
    party, _ = await funded_parties(engine)
    with pytest.raises(Conflict, match="insufficient BTC") as refused:
        await funding.withdraw(uow(engine), party, "BTC", "1000.5", f"out-{uuid.uuid4()}")
    assert refused.value.code == "insufficient"
    await funding.withdraw(uow(engine), party, "BTC", "1000", f"out-{uuid.uuid4()}")
    assert (await balances_of(engine, party))[Account(party, "BTC")] == 0


async def test_a_blocked_account_moves_nothing_until_unblocked(engine: AsyncEngine) -> None:
    party, _ = await funded_parties(engine)
    blocked = await funding.set_blocked(uow(engine), party, None, blocked=True, reason="sanctions")
    assert {a.asset for a in blocked} == {"BTC", "ETH", "EUR", "USD"}

    for move in (funding.deposit, funding.withdraw):
        with pytest.raises(Conflict, match="blocked: sanctions") as refused:
            await move(uow(engine), party, "ETH", "1", f"m-{uuid.uuid4()}")
        assert refused.value.code == "account_blocked"

    await funding.set_blocked(uow(engine), party, "ETH", blocked=False)
    await funding.withdraw(uow(engine), party, "ETH", "1", f"m-{uuid.uuid4()}")
    rows = {r.account.asset: r for r in await funding.accounts(uow(engine), party)}
    assert rows["ETH"].amount == demo("ETH") - 1
    assert not rows["ETH"].blocked
    assert (rows["USD"].blocked, rows["USD"].blocked_reason) == (True, "sanctions")


async def test_bad_funding_requests_are_refused(engine: AsyncEngine) -> None:
    with pytest.raises(ValidationFailed, match="unknown asset"):
        await funding.deposit(uow(engine), "P", "DOGE", "1", "r")
    with pytest.raises(ValidationFailed, match="amount"):
        await funding.deposit(uow(engine), "P", "USD", "-1", "r")
    with pytest.raises(ValidationFailed, match="party"):
        await funding.deposit(uow(engine), EXTERNAL, "USD", "1", "r")
    with pytest.raises(NotFound, match="no accounts"):
        await funding.set_blocked(uow(engine), f"NOBODY-{uuid.uuid4()}", None, blocked=True)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE settlement.ledger_entries SET amount = amount + 1",
        "DELETE FROM settlement.ledger_entries",
        "DELETE FROM settlement.journals",
        "TRUNCATE settlement.ledger_entries CASCADE",
    ],
)
async def test_the_database_refuses_to_change_the_ledger(
    engine: AsyncEngine, statement: str
) -> None:
    async with engine.connect() as conn:
        with pytest.raises(DBAPIError, match="append-only"):
            await conn.execute(text(statement))


def test_otc_ledger_deposits_once_per_reference_and_shows_balances(endpoints: Endpoints) -> None:
    party = f"CLI-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "OTC_DATABASE_URL": endpoints.database_url}

    def otc(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "stack.cli", "ledger", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    first = otc("deposit", party, "USD", "100", "--reference", f"{party}-1")
    again = otc("deposit", party, "USD", "100", "--reference", f"{party}-1")
    too_much = otc("withdraw", party, "USD", "100.01")
    shown = otc("balances", party)

    assert (first.returncode, again.returncode) == (0, 0), first.stderr + again.stderr
    assert "booked" in first.stdout
    assert "nothing moved" in again.stdout
    assert too_much.returncode == 1
    assert "insufficient USD balance" in too_much.stderr
    assert shown.returncode == 0
    assert party in shown.stdout
    assert "100" in shown.stdout
