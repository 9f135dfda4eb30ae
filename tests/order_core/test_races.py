"""Concurrent commands on one RFQ through separate database connections: exactly one
winner, every loser told why, and credit frozen exactly once."""

from __future__ import annotations

import asyncio

from order_core.service_layer.transaction import Dependencies
from tests.order_core.scenario import (
    MAKERS,
    accept,
    cancel,
    credit_held_by_losers,
    deliver,
    live_reservations,
    open_rfq,
    order_state,
    quote,
    results,
    rows,
)


async def test_fifty_accepts_of_one_quote_make_one_pending_confirmation(core: Dependencies) -> None:
    rfq_id = await open_rfq(core)
    quote_id = await quote(core, rfq_id, "MM-1")
    commands = [accept(rfq_id, quote_id) for _ in range(50)]

    await asyncio.gather(*(deliver(core, c) for c in commands))

    answers = await results(core, rfq_id)
    assert set(answers) == {c.event_id for c in commands}, "every caller gets an answer"
    winners = [a for a in answers.values() if a.accepted]
    assert len(winners) == 1
    losers = [a for a in answers.values() if not a.accepted]
    assert all(a.reason_code in ("quote_taken", "wrong_state") and a.reason for a in losers)
    assert await credit_held_by_losers(core, rfq_id, winners[0]) == []


async def test_fifty_accepts_across_different_quotes_freeze_credit_once(core: Dependencies) -> None:
    rfq_id = await open_rfq(core)
    quote_ids = [await quote(core, rfq_id, maker) for maker in MAKERS]
    commands = [accept(rfq_id, quote_ids[i % len(quote_ids)]) for i in range(50)]

    await asyncio.gather(*(deliver(core, c) for c in commands))

    answers = await results(core, rfq_id)
    assert len(answers) == 50
    [winner] = [a for a in answers.values() if a.accepted]
    # losers that had taken a quote and frozen credit gave it back
    assert await credit_held_by_losers(core, rfq_id, winner) == []


async def test_cancel_racing_accept_has_exactly_one_winner(core: Dependencies) -> None:
    for _ in range(8):
        rfq_id = await open_rfq(core)
        quote_id = await quote(core, rfq_id, "MM-2")
        take, stop = accept(rfq_id, quote_id), cancel(rfq_id)
        await asyncio.gather(deliver(core, take), deliver(core, stop))
        answers = await results(core, rfq_id)
        accepted, cancelled = answers[take.event_id].accepted, answers[stop.event_id].accepted
        assert accepted != cancelled, "exactly one of them wins"
        state = await order_state(core, rfq_id)
        if cancelled:
            assert state == "CANCELLED"
            assert await live_reservations(core, rfq_id) == []
        else:
            assert state != "CANCELLED"
            assert answers[stop.event_id].reason_code == "wrong_state"


async def test_a_quote_arriving_during_an_accept_is_kept_and_the_accept_holds(
    core: Dependencies,
) -> None:
    rfq_id = await open_rfq(core)
    first = await quote(core, rfq_id, "MM-1")
    take = accept(rfq_id, first)

    _, late_quote = await asyncio.gather(deliver(core, take), quote(core, rfq_id, "MM-3"))

    answers = await results(core, rfq_id)
    assert answers[take.event_id].accepted
    [order] = await rows(
        core, "SELECT accepted_quote_id FROM order_core.orders WHERE rfq_id = :r", r=rfq_id
    )
    assert order["accepted_quote_id"] == first
    recorded = await rows(
        core, "SELECT quote_id FROM order_core.quotes WHERE rfq_id = :r", r=rfq_id
    )
    assert {r["quote_id"] for r in recorded} == {first, late_quote}
