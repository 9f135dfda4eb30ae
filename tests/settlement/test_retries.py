"""Instructions that cannot settle yet, on real PostgreSQL: retried with backoff,
settled once the parties can meet them, failed with the reason once the attempts
are spent; T+n trades wait for the value-date batch.

The clock starts a day ahead of real time, so that the platform's own settlement
process (which retries by the real clock) never takes these instructions first.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from otc.clock import ManualClock
from otc.instruments import INSTRUMENTS
from settlement.domain.ledger import Account
from settlement.service_layer import funding
from settlement.service_layer.handlers import Outcome
from settlement.service_layer.settling import settle_due, settle_value_dated
from tests.settlement.helpers import (
    FAILED,
    SETTLED,
    balances_of,
    book,
    command,
    confirmed,
    demo,
    funded_parties,
    ledger_of,
    outbox_events,
    rules,
    trade_row,
    uow,
)

RETRYING = rules(max_attempts=3, base_ms=1000, max_ms=2000)


def ahead() -> ManualClock:
    return ManualClock(datetime.now(UTC) + timedelta(days=1))


async def sweep(engine: AsyncEngine, clock: ManualClock) -> None:
    while await settle_due(lambda: uow(engine, clock), RETRYING.retry):
        pass


async def test_a_refused_settlement_is_retried_and_settles_once_funds_arrive(
    engine: AsyncEngine,
) -> None:
    buyer, seller = await funded_parties(engine)
    clock = ahead()
    trade = confirmed(buyer, seller, quantity="1500", price="10", at=clock.now())

    assert await book(engine, command(trade), RETRYING, clock) is Outcome.RETRYING
    row = await trade_row(engine, trade.trade_id)
    assert row is not None
    assert (row["status"], row["attempts"]) == ("PENDING", 1)
    assert "insufficient BTC balance" in row["reason"]
    assert row["next_attempt_at"] == clock.now() + timedelta(seconds=1)
    assert await outbox_events(engine, trade.rfq_id) == []

    await funding.deposit(uow(engine, clock), seller, "BTC", "500", reference=f"top-up-{seller}")
    await sweep(engine, clock)  # not due yet: nothing happens
    assert (await trade_row(engine, trade.trade_id) or {}).get("attempts") == 1

    clock.advance(timedelta(seconds=1))
    await sweep(engine, clock)

    row = await trade_row(engine, trade.trade_id)
    assert row is not None
    assert (row["status"], row["attempts"], row["reason"]) == ("SETTLED", 2, "")
    assert [m.type for m in await outbox_events(engine, trade.rfq_id)] == [SETTLED]
    assert len(await ledger_of(engine, trade.trade_id)) == 4
    moved = await balances_of(engine, seller)
    assert moved[Account(seller, "BTC")] == demo("BTC") + 500 - 1500


async def test_a_trade_against_a_blocked_account_fails_after_its_attempts_with_the_reason(
    engine: AsyncEngine,
) -> None:
    buyer, seller = await funded_parties(engine)
    clock = ahead()
    await funding.set_blocked(uow(engine, clock), buyer, "USD", blocked=True, reason="KYC review")
    before = await balances_of(engine, buyer, seller)
    trade = confirmed(buyer, seller, at=clock.now())

    assert await book(engine, command(trade), RETRYING, clock) is Outcome.RETRYING
    for wait in (1, 2):  # the second wait doubled
        clock.advance(timedelta(seconds=wait))
        await sweep(engine, clock)

    row = await trade_row(engine, trade.trade_id)
    assert row is not None
    assert (row["status"], row["attempts"]) == ("FAILED", 3)
    [failed] = await outbox_events(engine, trade.rfq_id)
    assert failed.type == FAILED
    reason = getattr(failed.payload, "reason", "")
    assert reason == row["reason"]
    assert f"account {buyer} USD is blocked: KYC review" in reason
    assert "gave up after 3 attempts" in reason
    assert await ledger_of(engine, trade.trade_id) == []
    assert await balances_of(engine, buyer, seller) == before


async def test_a_t_plus_2_trade_waits_for_the_value_date_batch(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    t_plus_2 = dataclasses.replace(INSTRUMENTS["BTC-USD"], settlement_days=2)
    monkeypatch.setitem(INSTRUMENTS, "BTC-USD", t_plus_2)
    buyer, seller = await funded_parties(engine)
    clock = ahead()
    trade = confirmed(buyer, seller, at=clock.now())
    value_date = clock.now().date() + timedelta(days=2)  # every day settles on this calendar

    assert await book(engine, command(trade), RETRYING, clock) is Outcome.SCHEDULED
    row = await trade_row(engine, trade.trade_id)
    assert row is not None
    assert (row["status"], row["value_date"], row["next_attempt_at"]) == (
        "PENDING",
        value_date,
        None,
    )
    clock.advance(timedelta(days=1))
    await sweep(engine, clock)  # retries never take an instruction waiting for its date
    await settle_value_dated(
        lambda: uow(engine, clock), value_date - timedelta(days=1), RETRYING.retry
    )
    assert (await trade_row(engine, trade.trade_id) or {}).get("status") == "PENDING"
    assert await outbox_events(engine, trade.rfq_id) == []

    counts = await settle_value_dated(lambda: uow(engine, clock), value_date, RETRYING.retry)

    assert counts.get(Outcome.SETTLED, 0) >= 1
    assert (await trade_row(engine, trade.trade_id) or {}).get("status") == "SETTLED"
    entries = await ledger_of(engine, trade.trade_id)
    assert {e["value_date"] for e in entries} == {value_date}
    assert [m.type for m in await outbox_events(engine, trade.rfq_id)] == [SETTLED]
    moved = await balances_of(engine, buyer)
    assert moved[Account(buyer, "BTC")] == demo("BTC") + Decimal("2.5")
