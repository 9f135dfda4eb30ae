"""What the end-of-day batch asks of risk_limits, on real PostgreSQL: expire only
the reservations whose deadline passed before the close (and never one whose
deadline is still ahead of now), and list the credit in use.

Times run a day ahead of real time, so the platform's own risk sweeper (on the
real clock) never takes these reservations first.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncEngine

from otc.clock import ManualClock
from risk_limits.domain import commands
from risk_limits.domain.reservation import Status
from risk_limits.service_layer import credit_lines, freezing, settling
from risk_limits.service_layer.end_of_day import committed, expire_frozen
from risk_limits.service_layer.unit_of_work import Dependencies


async def test_only_reservations_overdue_by_the_close_and_by_now_expire(
    engine: AsyncEngine,
) -> None:
    start = datetime.now(UTC) + timedelta(days=1)
    clock = ManualClock(start)
    deps = Dependencies(engine=engine, clock=clock, reservation_ttl=timedelta(seconds=30))
    a, b = (f"EOD-{side}-{uuid.uuid4().hex[:8]}" for side in "AB")
    for party, counterparty in ((a, ""), (b, ""), (a, b), (b, a)):
        await credit_lines.set_credit_line(
            commands.SetCreditLine(party, "USD", "1000", counterparty), deps
        )
    legs = (
        commands.LegRequest(a, b, "10", "USD"),
        commands.LegRequest(b, a, "10", "USD"),
    )
    ids = {}
    for name, deadline in (
        ("overdue", start + timedelta(minutes=1)),
        ("after_close", start + timedelta(hours=3)),
        ("to_commit", start + timedelta(hours=5)),
    ):
        ids[name] = str(uuid.uuid4())
        await freezing.freeze(commands.Freeze(ids[name], str(uuid.uuid4()), legs, deadline), deps)
    await settling.commit(commands.Commit(ids["to_commit"]), deps)

    clock.advance(timedelta(hours=2))
    close = start + timedelta(hours=1)
    assert await expire_frozen(close, deps) >= 1
    # A close later than now still never reaches a deadline that has not passed.
    await expire_frozen(start + timedelta(hours=4), deps)

    async with deps.uow() as uow:
        found = {k: await uow.reservations.get(v) for k, v in ids.items()}
    assert {k: r.status for k, r in found.items() if r is not None} == {
        "overdue": Status.EXPIRED,
        "after_close": Status.FROZEN,
        "to_commit": Status.COMMITTED,
    }
    snapshot = await committed(deps)
    [(mine, committed_at)] = [
        (r, at) for r, at in snapshot.reservations if r.reservation_id == ids["to_commit"]
    ]
    assert committed_at == start
    assert {(leg.party, leg.amount) for leg in mine.legs} == {(a, 10), (b, 10)}
    used = {(line.key.party, line.key.counterparty): line.used for line in snapshot.lines}
    assert used[(a, "")] == used[(a, b)] == used[(b, a)] == Decimal(10)
