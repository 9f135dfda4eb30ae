"""A socket's lease on its token, with a clock the test moves: it ends at the
token's expiry, a fresh token of the same caller moves the end later (never
sooner), and a token of anyone else is refused."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from otc.auth import Principal, Role
from otc.errors import Forbidden
from otc.lease import Lease

T0 = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.at = T0

    def __call__(self) -> datetime:
        return self.at


def trader(expires_in: timedelta, party: str = "TRADER-A", role: Role = Role.TRADER) -> Principal:
    return Principal(party, role, T0 + expires_in)


def test_a_fresh_token_moves_the_end_later_and_never_sooner() -> None:
    clock = Clock()
    lease = Lease(trader(timedelta(seconds=10)), clock)
    assert lease.remaining_s() == 10
    lease.renew(trader(timedelta(hours=1)))
    assert lease.expires_at == T0 + timedelta(hours=1)
    lease.renew(trader(timedelta(seconds=30)))
    assert lease.expires_at == T0 + timedelta(hours=1)
    clock.at = T0 + timedelta(minutes=59)
    assert lease.remaining_s() == 60


@pytest.mark.parametrize(
    "other", [trader(timedelta(hours=1), "TRADER-B"), trader(timedelta(hours=1), role=Role.ADMIN)]
)
def test_a_token_of_anyone_else_is_refused_and_changes_nothing(other: Principal) -> None:
    lease = Lease(trader(timedelta(seconds=10)), Clock())
    with pytest.raises(Forbidden):
        lease.renew(other)
    assert lease.expires_at == T0 + timedelta(seconds=10)


async def test_the_lease_ends_at_the_expiry_unless_renewed_in_time() -> None:
    clock = Clock()
    lease = Lease(trader(timedelta(milliseconds=50)), lambda: clock() + _elapsed(started))
    started = asyncio.get_running_loop().time()
    ending = asyncio.create_task(lease.ended())
    await asyncio.sleep(0.01)
    lease.renew(trader(timedelta(milliseconds=300)))
    await asyncio.sleep(0.1)
    assert not ending.done()  # the first expiry passed, the renewal holds it open
    await asyncio.wait_for(ending, 2)
    assert _elapsed(started) >= timedelta(milliseconds=300)


async def test_a_cancelled_wait_ends_even_when_a_renewal_comes_with_the_cancel() -> None:
    lease = Lease(trader(timedelta(hours=1)), Clock())
    ending = asyncio.create_task(lease.ended())
    await asyncio.sleep(0)
    lease.renew(trader(timedelta(hours=2)))
    ending.cancel()
    with pytest.raises(asyncio.CancelledError):  # a swallowed cancel would time out
        await asyncio.wait_for(ending, 2)


def _elapsed(started: float) -> timedelta:
    return timedelta(seconds=asyncio.get_running_loop().time() - started)
