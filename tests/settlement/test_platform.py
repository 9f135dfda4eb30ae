"""Settlement's verdict end to end, every service its own process: a trade that
cannot settle ends SETTLEMENT_FAILED with its reason, a trade that can ends
SETTLED, and either way the credit it used is free again on both sides."""

from __future__ import annotations

import uuid
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from settlement.domain.ledger import Account
from settlement.seed import seed_demo_balances
from settlement.service_layer import funding
from stack.infra.platform import Platform
from tests.settlement.deals import MAKER, credit_freed, deal, trader_with_credit
from tests.settlement.helpers import balances_of, demo, ledger_of, trade_row, uow


async def reservation_of(engine: AsyncEngine, rfq_id: str) -> tuple[str, str]:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT status, reason FROM risk.reservations"
                    " WHERE rfq_id = :r AND status <> 'RELEASED'"
                ),
                {"r": rfq_id},
            )
        ).one()
    return row.status, row.reason


async def test_a_trade_the_buyer_cannot_pay_ends_settlement_failed_and_frees_the_credit(
    platform: Platform, engine: AsyncEngine
) -> None:
    trader = await trader_with_credit(platform)
    await funding.deposit(uow(engine), trader, "USD", "1", f"seed-{uuid.uuid4()}")

    done = await deal(platform, trader)

    assert done.status == "SETTLEMENT_FAILED"
    reason = done.view["status_reason"]
    assert f"insufficient USD balance: {trader} must deliver" in reason
    assert "gave up after 3 attempts" in reason
    row = await trade_row(engine, done.trade_id)
    assert row is not None
    assert (row["status"], row["attempts"], row["reason"]) == ("FAILED", 3, reason)
    assert await ledger_of(engine, done.trade_id) == []
    assert await balances_of(engine, trader) == {Account(trader, "USD"): Decimal(1)}
    await credit_freed(platform, trader)
    status, why = await reservation_of(engine, done.rfq_id)
    assert status == "SETTLEMENT_FAILED"
    assert why == f"trade {done.trade_id} failed to settle: {reason}"


async def test_a_trade_that_settles_moves_both_legs_and_frees_the_credit(
    platform: Platform, engine: AsyncEngine
) -> None:
    trader = await trader_with_credit(platform)
    await seed_demo_balances(engine, (trader,))

    done = await deal(platform, trader, quantity="0.5")

    assert done.status == "SETTLED"
    entries = await ledger_of(engine, done.trade_id)
    notional = Decimal("0.5") * Decimal(done.view["price"])
    assert {(e["party"], e["asset"], e["amount"]) for e in entries} == {
        (trader, "BTC", Decimal("0.5")),
        (MAKER, "BTC", Decimal("-0.5")),
        (trader, "USD", -notional),
        (MAKER, "USD", notional),
    }
    moved = await balances_of(engine, trader)
    assert moved[Account(trader, "USD")] == demo("USD") - notional
    await credit_freed(platform, trader)
    assert await reservation_of(engine, done.rfq_id) == (
        "SETTLED",
        f"trade {done.trade_id} settled",
    )
