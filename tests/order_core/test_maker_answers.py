"""What order_core makes of a maker's quotes and answers, in-process on the real
servers: withdrawals and replacements reach the trader, a quote on the maker's own
RFQ is never recorded, a refused accept says why, and only a timely confirmation
by the accepted quote's maker, repeating its id and price, confirms.

The maker here is one of the test's own, with credit lines of its own, so no
running quoter answers its last looks behind the test's back.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import timedelta

import pytest

from order_core.service_layer.transaction import Dependencies
from otc.contracts import events_pb2 as ev
from otc.ids import derived_id, new_id
from tests.order_core.makers import (
    answer,
    audited,
    open_rfq,
    pending,
    published,
    reservation_status,
    submit,
    withdrawn,
)
from tests.order_core.scenario import TRADER, accept, deliver, order_state, rows


async def test_a_withdrawal_reaches_the_trader_and_the_audit_trail(
    core: Dependencies, maker: str
) -> None:
    rfq_id = await open_rfq(core, maker)
    quote_id = await submit(core, rfq_id, maker)
    assert (await core.quotes.withdraw(rfq_id, quote_id, maker)).outcome.value == "done"
    event = withdrawn(rfq_id, quote_id, maker, "repricing")
    await deliver(core, event)
    await deliver(core, event)  # redelivered: recorded once

    recorded = [
        p for p in await published(core, rfq_id) if isinstance(p, ev.QuoteWithdrawalRecorded)
    ]
    assert len(recorded) == 1
    assert recorded[0].requester == TRADER
    assert (recorded[0].withdrawal.quote_id, recorded[0].withdrawal.reason) == (
        quote_id,
        "repricing",
    )
    assert (await audited(core, rfq_id)).count("otc.v1.QuoteWithdrawalRecorded") == 1


async def test_another_makers_withdrawal_is_not_recorded(core: Dependencies, maker: str) -> None:
    rfq_id = await open_rfq(core, maker)
    quote_id = await submit(core, rfq_id, maker)
    await deliver(core, withdrawn(rfq_id, quote_id, "MM-2", "not mine"))
    assert not [
        p for p in await published(core, rfq_id) if isinstance(p, ev.QuoteWithdrawalRecorded)
    ]


async def test_a_replacement_withdraws_the_old_quote_before_recording_the_new(
    core: Dependencies, maker: str
) -> None:
    rfq_id = await open_rfq(core, maker)
    old = await submit(core, rfq_id, maker)
    new = await submit(core, rfq_id, maker, replaces=old, offer="65001")

    trader_sees = [
        p
        for p in await published(core, rfq_id)
        if isinstance(p, ev.QuoteWithdrawalRecorded | ev.QuoteRecorded)
    ]
    assert [type(p).__name__ for p in trader_sees] == [
        "QuoteRecorded",
        "QuoteWithdrawalRecorded",
        "QuoteRecorded",
    ]
    gone, replacement = trader_sees[1], trader_sees[2]
    assert isinstance(gone, ev.QuoteWithdrawalRecorded)
    assert isinstance(replacement, ev.QuoteRecorded)
    assert (gone.withdrawal.quote_id, gone.withdrawal.reason) == (old, "replaced")
    assert (replacement.quote.quote_id, replacement.quote.replaces_quote_id) == (new, old)


async def test_a_quote_on_the_makers_own_rfq_is_never_recorded(
    core: Dependencies, maker: str
) -> None:
    rfq_id = await open_rfq(core, maker, requester=maker)
    await submit(core, rfq_id, maker)
    assert await order_state(core, rfq_id) == "RFQ_SENT"
    assert await rows(core, "SELECT 1 FROM order_core.quotes WHERE rfq_id = :r", r=rfq_id) == []
    assert not [p for p in await published(core, rfq_id) if isinstance(p, ev.QuoteRecorded)]


@pytest.mark.parametrize(
    ("gone", "code"),
    [("withdrawn", "quote_withdrawn"), ("replaced", "quote_replaced"), ("taken", "quote_taken")],
)
async def test_an_accept_of_a_quote_that_is_gone_says_why(
    core: Dependencies, maker: str, gone: str, code: str
) -> None:
    rfq_id = await open_rfq(core, maker)
    quote_id = await submit(core, rfq_id, maker)
    if gone == "withdrawn":
        await core.quotes.withdraw(rfq_id, quote_id, maker)
    elif gone == "replaced":
        await submit(core, rfq_id, maker, replaces=quote_id)
    else:
        await core.quotes.take(rfq_id, quote_id, taker="someone else", maker=maker)
    command = accept(rfq_id, quote_id)
    await deliver(core, command)
    [result] = [
        p
        for p in await published(core, rfq_id)
        if isinstance(p, ev.CommandResult) and p.command_id == command.event_id
    ]
    assert (result.accepted, result.reason_code) == (False, code)
    assert await order_state(core, rfq_id) == "QUOTED"


@pytest.mark.parametrize("wrong", ["price", "quote_id"])
async def test_a_confirmation_that_does_not_repeat_the_accepted_quote_rejects(
    core: Dependencies, maker: str, wrong: str
) -> None:
    rfq_id = await open_rfq(core, maker)
    quote_id = await submit(core, rfq_id, maker, offer="65000")
    reservation_id = await pending(core, rfq_id, quote_id)
    named, price = (quote_id, "65000.01") if wrong == "price" else (new_id(), "65000")
    await deliver(core, answer(rfq_id, named, maker, reservation_id, price=price, confirmed=True))

    assert await order_state(core, rfq_id) == "QUOTED"
    assert await reservation_status(core, reservation_id) == "RELEASED"
    [back] = [
        p
        for p in await published(core, rfq_id)
        if isinstance(p, ev.OrderStateChanged) and p.event == "CounterpartyReject"
    ]
    assert "confirmation refused" in back.reason
    assert f"the accepted {wrong.removesuffix('_id')}" in back.reason


async def test_a_confirmation_repeating_the_quote_and_price_confirms(
    core: Dependencies, maker: str
) -> None:
    rfq_id = await open_rfq(core, maker)
    quote_id = await submit(core, rfq_id, maker, offer="65000.10")
    reservation_id = await pending(core, rfq_id, quote_id)
    # the same price written differently is the same price
    await deliver(
        core, answer(rfq_id, quote_id, maker, reservation_id, price="65000.1", confirmed=True)
    )
    assert await order_state(core, rfq_id) in ("CONFIRMED", "SETTLED")


async def test_an_answer_from_another_maker_is_ignored(core: Dependencies, maker: str) -> None:
    rfq_id = await open_rfq(core, maker)
    quote_id = await submit(core, rfq_id, maker)
    reservation_id = await pending(core, rfq_id, quote_id)
    for confirmed in (False, True):
        await deliver(
            core,
            answer(rfq_id, quote_id, "MM-2", reservation_id, price="65000", confirmed=confirmed),
        )
    assert await order_state(core, rfq_id) == "PENDING_CONFIRMATION"
    assert await reservation_status(core, reservation_id) == "FROZEN"


async def test_a_late_confirmation_is_ignored_and_the_order_times_out(
    core: Dependencies, maker: str
) -> None:
    short = dataclasses.replace(core, last_look_window=timedelta(milliseconds=1))
    rfq_id = await open_rfq(short, maker)
    quote_id = await submit(short, rfq_id, maker)
    command = accept(rfq_id, quote_id)
    await deliver(short, command)
    reservation_id = derived_id("reservation", command.event_id)
    await asyncio.sleep(0.01)  # past the 1 ms window
    await deliver(
        short, answer(rfq_id, quote_id, maker, reservation_id, price="65000", confirmed=True)
    )

    assert await reservation_status(core, reservation_id) != "COMMITTED"
    # the sweeper (the platform's order_core runs one) falls the order back
    deadline = time.monotonic() + 10
    while await order_state(core, rfq_id) != "QUOTED":
        assert time.monotonic() < deadline, "the late last look was never timed out"
        await asyncio.sleep(0.05)
    assert await reservation_status(core, reservation_id) == "RELEASED"
