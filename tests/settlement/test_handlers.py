"""Booking under concurrency, on real PostgreSQL: the row locks and unique keys that
keep balances exact when trades race, without Kafka in the way."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncEngine

from settlement.domain.ledger import Account
from settlement.service_layer.handlers import Outcome
from tests.settlement.helpers import (
    balances_of,
    book,
    command,
    confirmed,
    demo,
    funded_parties,
    ledger_of,
    outbox_events,
)


async def test_concurrent_trades_never_overdraw_a_balance(engine: AsyncEngine) -> None:
    buyer, seller = await funded_parties(engine)
    trades = [confirmed(buyer, seller, quantity="300", price="1") for _ in range(8)]

    outcomes = await asyncio.gather(*(book(engine, command(t)) for t in trades))

    # 1,000 BTC covers three deliveries of 300 and not a fourth.
    assert sorted(outcomes) == sorted([Outcome.SETTLED] * 3 + [Outcome.FAILED] * 5)
    moved = await balances_of(engine, buyer, seller)
    assert moved[Account(seller, "BTC")] == demo("BTC") - 900
    assert moved[Account(buyer, "BTC")] == demo("BTC") + 900


async def test_opposite_trades_between_the_same_parties_do_not_deadlock(
    engine: AsyncEngine,
) -> None:
    alice, bob = await funded_parties(engine)
    trades = [
        confirmed(alice, bob, quantity="1", price="100")
        if i % 2
        else confirmed(bob, alice, quantity="2", price="100")
        for i in range(20)
    ]

    outcomes = await asyncio.gather(*(book(engine, command(t)) for t in trades))

    assert set(outcomes) == {Outcome.SETTLED}
    moved = await balances_of(engine, alice, bob)
    assert moved[Account(alice, "BTC")] == demo("BTC") - 10
    assert moved[Account(bob, "USD")] == demo("USD") - 1000


async def test_one_trade_racing_under_two_message_ids_is_booked_once(
    engine: AsyncEngine,
) -> None:
    buyer, seller = await funded_parties(engine)
    trade = confirmed(buyer, seller)

    outcomes = await asyncio.gather(*(book(engine, command(trade)) for _ in range(4)))

    assert sorted(outcomes) == sorted([Outcome.SETTLED] + [Outcome.DUPLICATE] * 3)
    assert len(await ledger_of(engine, trade.trade_id)) == 4
    assert len(await outbox_events(engine, trade.rfq_id)) == 1
    assert (await balances_of(engine, buyer, seller))[Account(buyer, "BTC")] == demo(
        "BTC"
    ) + Decimal("2.5")


async def test_the_same_message_twice_is_a_no_op(engine: AsyncEngine) -> None:
    buyer, seller = await funded_parties(engine)
    cmd = command(confirmed(buyer, seller))

    assert await book(engine, cmd) is Outcome.SETTLED
    after_first = await balances_of(engine, buyer, seller)
    assert await book(engine, cmd) is Outcome.DUPLICATE

    assert await balances_of(engine, buyer, seller) == after_first
    assert len(await outbox_events(engine, cmd.trade.rfq_id)) == 1
