"""The paths where a fault used to leave an order stuck or leak credit, each driven
in-process on the real servers: a Commit that outlived order_core's transaction, a
stale duplicate accept, orders the sweeper cannot end, a credit refusal after the
quote was taken, a maker's text that PostgreSQL cannot store, and what the
reconciler repairs.

The running platform's own order_core sweeps the same database, so where its
sweeper could end an order too, the tests accept either of them having done it:
the claim is about the end state, which is the same whichever path gets there.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import grpc
import pytest
from sqlalchemy import text

from order_core.service_layer import accepting, deadlines
from order_core.service_layer.reconciling import reconcile
from order_core.service_layer.transaction import Dependencies
from otc import failpoints
from otc.bus.envelope import Message
from otc.contracts import events_pb2 as ev
from otc.contracts import risk_limits_pb2 as pb
from otc.contracts import risk_limits_pb2_grpc as pb_grpc
from otc.ids import derived_id
from stack.infra.platform import Platform
from tests.order_core.makers import (
    answer,
    audited,
    new_maker,
    open_rfq,
    pending,
    published,
    reservation_status,
    submit,
    withdrawn,
)
from tests.order_core.scenario import TRADER, accept, cancel, deliver, order_state, rows

WINDOW = timedelta(milliseconds=300)


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def pending_order(ctx: Dependencies, maker: str) -> tuple[str, str, str]:
    """An RFQ quoted by `maker` and accepted: its id, the quote's and the reservation's."""
    rfq_id = await open_rfq(ctx, maker)
    quote_id = await submit(ctx, rfq_id, maker)
    return rfq_id, quote_id, await pending(ctx, rfq_id, quote_id)


async def trades_confirmed(ctx: Dependencies, rfq_id: str) -> list[ev.TradeConfirmed]:
    return [p for p in await published(ctx, rfq_id) if isinstance(p, ev.TradeConfirmed)]


async def test_a_commit_that_outlived_its_transaction_confirms_on_the_late_redelivery(
    core: Dependencies, maker: str
) -> None:
    ctx = dataclasses.replace(core, last_look_window=WINDOW)
    rfq_id, quote_id, reservation_id = await pending_order(ctx, maker)
    confirmation = answer(rfq_id, quote_id, maker, reservation_id, price="65000", confirmed=True)
    # The maker confirmed in time and Commit went through; then order_core's
    # transaction was lost (a crash, a database blip): nothing of it is on record.
    assert (await ctx.risk.commit(reservation_id)).ok
    await asyncio.sleep(WINDOW.total_seconds() + 0.1)

    await deliver(ctx, confirmation)  # redelivered after the window

    assert await order_state(ctx, rfq_id) in ("CONFIRMED", "SETTLED")
    [trade] = await trades_confirmed(ctx, rfq_id)
    assert trade.price == "65000"


async def test_a_reject_after_a_commit_that_outlived_its_transaction_confirms(
    core: Dependencies, maker: str
) -> None:
    rfq_id, quote_id, reservation_id = await pending_order(core, maker)
    # The maker's confirmation committed the credit, then its transaction was lost;
    # the maker's bot, seeing no outcome, answers again and rejects this time.
    assert (await core.risk.commit(reservation_id)).ok

    await deliver(core, answer(rfq_id, quote_id, maker, reservation_id, price="", confirmed=False))

    assert await order_state(core, rfq_id) in ("CONFIRMED", "SETTLED")
    assert len(await trades_confirmed(core, rfq_id)) == 1
    assert await reservation_status(core, reservation_id) in ("COMMITTED", "SETTLED")


async def test_the_sweeper_confirms_an_overdue_order_whose_credit_was_committed(
    core: Dependencies, maker: str
) -> None:
    ctx = dataclasses.replace(core, last_look_window=WINDOW)
    rfq_id, _, reservation_id = await pending_order(ctx, maker)
    # Commit timed out at the client while the server committed; no answer comes again.
    assert (await ctx.risk.commit(reservation_id)).ok
    await asyncio.sleep(WINDOW.total_seconds() + 0.1)

    async def confirmed() -> bool:
        await deadlines.time_out_last_looks(ctx)
        return await order_state(ctx, rfq_id) in ("CONFIRMED", "SETTLED")

    await eventually(confirmed, "a committed reservation's order never confirmed")
    assert len(await trades_confirmed(ctx, rfq_id)) == 1
    assert await reservation_status(ctx, reservation_id) in ("COMMITTED", "SETTLED")


async def test_a_stale_duplicate_accept_leaves_the_winners_credit_alone(
    core: Dependencies, maker: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rfq_id = await open_rfq(core, maker)
    quote_id = await submit(core, rfq_id, maker)
    command = accept(rfq_id, quote_id)
    await deliver(core, command)
    reservation_id = await reservation_of(core, rfq_id)

    async def checked_before_the_first_attempt_committed(_ctx: Dependencies, _id: str) -> bool:
        return False

    # A zombie consumer's copy of the same accept, which read "not processed yet"
    # before the first attempt committed, goes on after it did.
    with monkeypatch.context() as patched:
        patched.setattr(accepting, "already_processed", checked_before_the_first_attempt_committed)
        await deliver(core, command)

    assert await order_state(core, rfq_id) == "PENDING_CONFIRMATION"
    assert await reservation_status(core, reservation_id) == "FROZEN"
    await deliver(
        core, answer(rfq_id, quote_id, maker, reservation_id, price="65000", confirmed=True)
    )
    assert await order_state(core, rfq_id) in ("CONFIRMED", "SETTLED")


async def reservation_of(ctx: Dependencies, rfq_id: str) -> str:
    [row] = await rows(
        ctx, "SELECT reservation_id FROM order_core.orders WHERE rfq_id = :r", r=rfq_id
    )
    return str(row["reservation_id"])


@pytest.fixture
async def stuck_orders(core: Dependencies) -> AsyncIterator[int]:
    """More overdue pending orders than two concurrent sweeps take at once (the
    platform's and the test's), older than any other, whose reservation id
    risk_limits refuses outright: nothing can ever end them."""
    tag = f"stuck-{uuid.uuid4().hex[:8]}"
    count = 3 * deadlines.BATCH
    async with core.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO order_core.orders (rfq_id, requester, instrument, side, quantity,"
                " counterparties, anonymous, state, version, rfq_expires_at, reservation_id,"
                " lastlook_deadline, created_at, updated_at)"
                " SELECT :tag || '-' || n, 'TRADER-STUCK', 'BTC-USD', 'buy', 1, '{}', false,"
                " 'PENDING_CONFIRMATION', 1, now() + interval '1 hour', 'not-a-reservation',"
                " now() - interval '1 hour', now(), now() FROM generate_series(1, :count) n"
            ),
            {"tag": tag, "count": count},
        )
    try:
        yield count
    finally:
        async with core.engine.begin() as conn:
            await conn.execute(
                text("DELETE FROM order_core.orders WHERE rfq_id LIKE :tag || '-%'"), {"tag": tag}
            )


async def test_orders_the_sweeper_cannot_end_do_not_hold_up_the_others(
    core: Dependencies, maker: str, stuck_orders: int
) -> None:
    ctx = dataclasses.replace(core, last_look_window=WINDOW)
    rfq_id, _, reservation_id = await pending_order(ctx, maker)
    await asyncio.sleep(WINDOW.total_seconds() + 0.1)

    async def timed_out() -> bool:
        await deadlines.time_out_last_looks(ctx)
        return await order_state(ctx, rfq_id) == "QUOTED"

    await eventually(timed_out, f"{stuck_orders} stuck orders starved the sweeper")
    assert await reservation_status(ctx, reservation_id) == "RELEASED"


async def test_a_credit_refusal_gives_the_quote_back_for_a_retry(
    core: Dependencies, platform: Platform
) -> None:
    poor = await new_maker(platform, limit="1")
    rfq_id = await open_rfq(core, poor)
    quote_id = await submit(core, rfq_id, poor)
    refused = accept(rfq_id, quote_id)
    await deliver(core, refused)
    [result] = [
        p
        for p in await published(core, rfq_id)
        if isinstance(p, ev.CommandResult) and p.command_id == refused.event_id
    ]
    assert (result.accepted, result.reason_code) == (False, "insufficient_credit")
    assert await core.quotes.taker(rfq_id, quote_id) is None

    await credit(platform, poor, "10000000")
    await deliver(core, accept(rfq_id, quote_id))  # the trader tries again
    assert await order_state(core, rfq_id) == "PENDING_CONFIRMATION"


async def test_a_risk_refusal_other_than_credit_is_not_called_insufficient_credit(
    core: Dependencies,
) -> None:
    stranger = f"MM-OC-{uuid.uuid4().hex[:8]}"  # no credit line at all: risk answers NOT_FOUND
    rfq_id = await open_rfq(core, stranger)
    quote_id = await submit(core, rfq_id, stranger)
    refused = accept(rfq_id, quote_id)
    await deliver(core, refused)
    [result] = [
        p
        for p in await published(core, rfq_id)
        if isinstance(p, ev.CommandResult) and p.command_id == refused.event_id
    ]
    assert (result.accepted, result.reason_code) == (False, "no_credit_line")
    assert stranger in result.reason
    assert await core.quotes.taker(rfq_id, quote_id) is None


async def credit(platform: Platform, maker: str, limit: str) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{platform.risk_port}") as channel:
        stub = pb_grpc.RiskLimitsStub(channel)
        for party, counterparty in ((maker, ""), (maker, TRADER), (TRADER, maker)):
            await stub.SetCreditLine(
                pb.SetCreditLineRequest(
                    party=party, counterparty=counterparty, currency="USD", limit=limit
                )
            )


async def test_a_withdrawal_reason_with_a_nul_byte_is_recorded_cleaned(
    core: Dependencies, maker: str
) -> None:
    rfq_id = await open_rfq(core, maker)
    quote_id = await submit(core, rfq_id, maker)
    await core.quotes.withdraw(rfq_id, quote_id, maker)

    await deliver(core, withdrawn(rfq_id, quote_id, maker, "re\x00pri\x07cing"))

    [recorded] = [
        p for p in await published(core, rfq_id) if isinstance(p, ev.QuoteWithdrawalRecorded)
    ]
    assert recorded.withdrawal.reason == "repricing"
    assert "otc.v1.QuoteWithdrawalRecorded" in await audited(core, rfq_id)


async def test_a_reject_reason_with_a_nul_byte_rejects_with_the_cleaned_reason(
    core: Dependencies, maker: str
) -> None:
    rfq_id, quote_id, reservation_id = await pending_order(core, maker)
    reject = answer(rfq_id, quote_id, maker, reservation_id, price="", confirmed=False)
    assert isinstance(reject.payload, ev.LastLookResponse)
    reject.payload.reason = "market\x00 moved"

    await deliver(core, reject)

    assert await order_state(core, rfq_id) == "QUOTED"
    assert await reservation_status(core, reservation_id) == "RELEASED"
    [back] = [
        p
        for p in await published(core, rfq_id)
        if isinstance(p, ev.OrderStateChanged) and p.event == "CounterpartyReject"
    ]
    assert back.reason == "market moved"


async def _froze_then_failed(core: Dependencies, maker: str) -> tuple[str, Message, str]:
    """An accept that froze credit and failed before recording it: the RFQ, the
    command, and its reservation, FROZEN for an order still QUOTED."""
    rfq_id = await open_rfq(core, maker)
    command = accept(rfq_id, await submit(core, rfq_id, maker))
    reservation_id = derived_id("reservation", command.event_id)
    failpoints.arm("order_core.accept.after_freeze=raise")
    try:
        with pytest.raises(failpoints.FailpointError):
            await deliver(core, command)
    finally:
        failpoints.disarm()
    assert await reservation_status(core, reservation_id) == "FROZEN"
    assert await order_state(core, rfq_id) == "QUOTED"
    return rfq_id, command, reservation_id


async def test_the_reconciler_leaves_an_open_orders_freeze_to_its_accept_on_its_way(
    core: Dependencies, maker: str
) -> None:
    rfq_id, command, reservation_id = await _froze_then_failed(core, maker)

    await reconcile(core, grace=timedelta(0))

    assert await reservation_status(core, reservation_id) == "FROZEN"
    await deliver(core, command)  # the accept, redelivered at last, trades
    assert await order_state(core, rfq_id) == "PENDING_CONFIRMATION"
    [held] = await rows(
        core, "SELECT reservation_id FROM order_core.orders WHERE rfq_id = :r", r=rfq_id
    )
    assert held.reservation_id == reservation_id


async def test_the_reconciler_releases_a_freeze_whose_order_has_ended(
    core: Dependencies, maker: str
) -> None:
    rfq_id, _, reservation_id = await _froze_then_failed(core, maker)
    await deliver(core, cancel(rfq_id))
    assert await order_state(core, rfq_id) == "CANCELLED"

    await reconcile(core, grace=timedelta(0))

    assert await reservation_status(core, reservation_id) == "RELEASED"


async def test_the_reconciler_confirms_a_committed_order_and_spares_live_ones(
    core: Dependencies, maker: str
) -> None:
    ctx = dataclasses.replace(core, last_look_window=WINDOW)
    committed_rfq = await open_rfq(ctx, maker)
    committed = await pending(ctx, committed_rfq, await submit(ctx, committed_rfq, maker))
    assert (await ctx.risk.commit(committed)).ok
    live_rfq = await open_rfq(core, maker)
    live = await pending(core, live_rfq, await submit(core, live_rfq, maker))  # 30 s window
    await asyncio.sleep(WINDOW.total_seconds() + 0.1)

    await reconcile(ctx, grace=timedelta(0))

    assert await order_state(ctx, committed_rfq) in ("CONFIRMED", "SETTLED")
    assert len(await trades_confirmed(ctx, committed_rfq)) == 1
    assert await order_state(core, live_rfq) == "PENDING_CONFIRMATION"
    assert await reservation_status(core, live) == "FROZEN"
