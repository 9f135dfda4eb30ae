"""Expiry driven by a manual clock, through the service layer, on a database of its own.

Moving the clock makes *every* FROZEN reservation of the database overdue, so these
tests get a freshly migrated database instead of the session's shared one.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from otc.clock import ManualClock
from otc.db import make_engine
from otc.errors import Conflict
from risk_limits.domain import commands
from risk_limits.domain.errors import IllegalTransition, ReservationExpired
from risk_limits.domain.reservation import Status
from risk_limits.seed import DEMO_BILATERAL_LIMIT, DEMO_LIMIT, seed_demo_credit
from risk_limits.service_layer.credit_lines import get_exposure, set_credit_line
from risk_limits.service_layer.freezing import freeze
from risk_limits.service_layer.settling import SWEEP_BATCH, commit, expire_overdue
from risk_limits.service_layer.unit_of_work import Dependencies
from stack.infra.provider import Endpoints
from tests.risk_limits.conftest import private_database, rid

TTL = timedelta(seconds=30)


@pytest.fixture(scope="module")
async def private_engine(endpoints: Endpoints, engine: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    async with private_database(endpoints, engine) as url:
        private = make_engine(url, pool_size=5)
        yield private
        await private.dispose()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime.now(UTC))


@pytest.fixture
def deps(private_engine: AsyncEngine, clock: ManualClock) -> Dependencies:
    return Dependencies(engine=private_engine, clock=clock, reservation_ttl=TTL)


async def sweep_all(deps: Dependencies) -> int:
    total = 0
    while (expired := await expire_overdue(deps)) > 0:
        total += expired
    return total


def freeze_cmd(seed: str, a: str, b: str, amount: str) -> commands.Freeze:
    legs = (
        commands.LegRequest(a, b, amount, "USD"),
        commands.LegRequest(b, a, amount, "USD"),
    )
    return commands.Freeze(rid(seed), "rfq-" + seed, legs, None)


async def parties(deps: Dependencies, limit: str = "1000") -> tuple[str, str]:
    a, b = f"A-{uuid.uuid4().hex[:8]}", f"B-{uuid.uuid4().hex[:8]}"
    for party, counterparty in ((a, ""), (b, ""), (a, b), (b, a)):
        await set_credit_line(commands.SetCreditLine(party, "USD", limit, counterparty), deps)
    return a, b


async def frozen(deps: Dependencies, party: str) -> Decimal:
    return (await get_exposure(commands.GetExposure(party), deps)).frozen


async def test_a_reservation_without_deadline_expires_after_the_ttl(
    deps: Dependencies, clock: ManualClock
) -> None:
    await sweep_all(deps)
    a, b = await parties(deps)
    assert await freeze(freeze_cmd("r1-" + a, a, b, "40"), deps) is Status.FROZEN

    clock.advance(TTL - timedelta(milliseconds=1))
    assert await expire_overdue(deps) == 0
    assert await frozen(deps, a) == 40

    clock.advance(timedelta(milliseconds=1))
    assert await expire_overdue(deps) == 1
    assert await frozen(deps, a) == await frozen(deps, b) == 0
    with pytest.raises(IllegalTransition, match="is EXPIRED; cannot commit"):
        await commit(commands.Commit(rid("r1-" + a)), deps)


async def test_overdue_reservations_beyond_one_batch_are_all_expired(
    deps: Dependencies, clock: ManualClock
) -> None:
    await sweep_all(deps)
    a, b = await parties(deps, limit="100000")
    count = SWEEP_BATCH + 20
    for i in range(count):
        await freeze(freeze_cmd(f"batch-{i}-{a}", a, b, "1"), deps)
    clock.advance(TTL)
    assert await expire_overdue(deps) == SWEEP_BATCH
    assert await expire_overdue(deps) == 20
    assert await frozen(deps, a) == 0


async def test_a_commit_after_the_deadline_is_refused_and_releases_the_credit(
    deps: Dependencies, clock: ManualClock
) -> None:
    await sweep_all(deps)
    a, b = await parties(deps)
    assert await freeze(freeze_cmd("late-" + a, a, b, "40"), deps) is Status.FROZEN
    clock.advance(TTL)  # the deadline has come; the sweeper has not run

    with pytest.raises(ReservationExpired, match="passed its deadline"):
        await commit(commands.Commit(rid("late-" + a)), deps)

    line = await get_exposure(commands.GetExposure(a), deps)
    assert (line.frozen, line.used) == (0, 0)
    assert await expire_overdue(deps) == 0  # already released, by the Commit
    with pytest.raises(IllegalTransition, match="is EXPIRED; cannot commit"):
        await commit(commands.Commit(rid("late-" + a)), deps)


async def test_a_commit_just_before_the_deadline_commits(
    deps: Dependencies, clock: ManualClock
) -> None:
    await sweep_all(deps)
    a, b = await parties(deps)
    await freeze(freeze_cmd("timely-" + a, a, b, "40"), deps)
    clock.advance(TTL - timedelta(milliseconds=1))
    assert await commit(commands.Commit(rid("timely-" + a)), deps) is Status.COMMITTED
    assert (await get_exposure(commands.GetExposure(a), deps)).used == 40


async def test_sweepers_racing_late_commits_expire_each_reservation_once(
    deps: Dependencies, clock: ManualClock
) -> None:
    await sweep_all(deps)
    a, b = await parties(deps, limit="100000")
    ids = [f"race-{i}-{a}" for i in range(60)]
    for reservation_id in ids:
        await freeze(freeze_cmd(reservation_id, a, b, "10"), deps)
    clock.advance(TTL)

    async def try_commit(seed: str) -> str:
        try:
            await commit(commands.Commit(rid(seed)), deps)
        except ReservationExpired:
            return "expired"  # the Commit got the row first and released it
        except Conflict:
            return "refused"  # a sweeper got the row first
        return "committed"

    results = await asyncio.gather(sweep_all(deps), sweep_all(deps), *(try_commit(r) for r in ids))
    swept, answers = results[0] + results[1], results[2:]
    assert "committed" not in answers
    assert swept + answers.count("expired") == len(ids)
    line = await get_exposure(commands.GetExposure(a), deps)
    assert (line.frozen, line.used) == (0, 0)


async def test_seeding_demo_credit_is_idempotent(
    private_engine: AsyncEngine, deps: Dependencies
) -> None:
    demo = (f"DEMO-{uuid.uuid4().hex[:8]}", f"DEMO-{uuid.uuid4().hex[:8]}")
    await seed_demo_credit(private_engine, demo)
    await freeze(freeze_cmd("seeded-" + demo[0], demo[0], demo[1], "5"), deps)
    await seed_demo_credit(private_engine, demo)
    line = await get_exposure(commands.GetExposure(demo[0]), deps)
    assert (line.currency, line.limit, line.frozen) == ("USD", DEMO_LIMIT, 5)
    line = await get_exposure(commands.GetExposure(demo[1], demo[0]), deps)
    assert (line.currency, line.limit, line.frozen) == ("USD", DEMO_BILATERAL_LIMIT, 5)
