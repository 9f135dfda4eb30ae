"""The deadline sweeper, from the rows alone: RFQ windows close, unanswered last
looks time out with their credit released, and two sweepers racing over the same
rows expire each order once."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

from order_core.service_layer.deadlines import expire_rfqs, time_out_last_looks
from order_core.service_layer.transaction import Dependencies
from otc.bus.envelope import decode
from otc.contracts import events_pb2 as ev
from otc.ids import derived_id
from tests.order_core.scenario import accept, deliver, open_rfq, order_state, quote, rows


async def _expired_events(core: Dependencies, rfq_id: str) -> int:
    found = 0
    for row in await rows(core, "SELECT payload FROM order_core.outbox WHERE key = :k", k=rfq_id):
        payload = decode(bytes(row["payload"])).payload
        if isinstance(payload, ev.OrderStateChanged) and payload.state == "EXPIRED":
            found += 1
    return found


async def test_two_sweepers_racing_expire_each_order_exactly_once(core: Dependencies) -> None:
    rfq_ids = [await open_rfq(core, window=timedelta(milliseconds=300)) for _ in range(12)]
    await quote(core, rfq_ids[0], "MM-1")  # a quoted RFQ expires too
    await asyncio.sleep(0.5)

    await asyncio.gather(expire_rfqs(core), expire_rfqs(core), expire_rfqs(core))

    for rfq_id in rfq_ids:
        assert await order_state(core, rfq_id) == "EXPIRED"
        assert await _expired_events(core, rfq_id) == 1


async def test_an_unanswered_last_look_times_out_and_releases_credit(core: Dependencies) -> None:
    hasty = dataclasses.replace(core, last_look_window=timedelta(0))
    rfq_id = await open_rfq(core)
    quote_id = await quote(core, rfq_id, "MM-3")
    take = accept(rfq_id, quote_id)
    await deliver(hasty, take)  # its last-look deadline is already past
    reservation_id = derived_id("reservation", take.event_id)

    # the running platform's own sweeper may hold the row (SKIP LOCKED) and get
    # there first; either way the order goes back to QUOTED, its window being open
    for _ in range(50):
        await time_out_last_looks(core)
        if await order_state(core, rfq_id) == "QUOTED":
            break
        await asyncio.sleep(0.1)
    assert await order_state(core, rfq_id) == "QUOTED"
    [reservation] = await rows(
        core,
        "SELECT status FROM risk.reservations WHERE reservation_id = :r",
        r=reservation_id,
    )
    assert reservation["status"] == "RELEASED"
