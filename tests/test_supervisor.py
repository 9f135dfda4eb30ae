"""The supervisor of `otc up` on the real platform: a service killed with SIGKILL
comes back on its ports and gets ready, a crash loop backs off, a stop during a
backoff starts nothing, and `--fail-fast` reports the death instead."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from stack.infra.platform import Platform
from stack.infra.supervisor import Backoff, Supervisor, first_exit

SERVICE = "price-feed"


@dataclass
class Supervised:
    supervisor: Supervisor
    lines: list[str]
    services_file: Path
    stop: asyncio.Event
    task: asyncio.Task[None]

    def pids(self) -> dict[str, int]:
        found: dict[str, int] = json.loads(self.services_file.read_text())
        return found


async def _until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not {what} within {timeout}s"
        await asyncio.sleep(0.05)


async def _revive(platform: Platform) -> None:
    """Leaves every service as the session found it: alive and ready."""
    for name, child in list(platform.children.items()):
        if child.alive():
            await platform.wait_ready(name, 90)
        else:
            await platform.restart(name, timeout=90)


def _supervise(platform: Platform, tmp_path: Path, backoff: Backoff) -> Supervised:
    lines: list[str] = []
    services_file = tmp_path / "services.json"
    supervisor = Supervisor(
        platform, backoff=backoff, say=lines.append, services_file=services_file, poll_s=0.05
    )
    stop = asyncio.Event()
    task = asyncio.create_task(supervisor.run(stop))
    return Supervised(supervisor, lines, services_file, stop, task)


@pytest.fixture
async def supervised(platform: Platform, tmp_path: Path) -> AsyncIterator[Supervised]:
    running = _supervise(platform, tmp_path, Backoff())
    try:
        yield running
    finally:
        running.stop.set()
        await asyncio.wait_for(running.task, 10)
        await _revive(platform)


def _kill(platform: Platform, name: str) -> int:
    pid = platform.children[name].pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # from outside, as the OOM killer or `otc chaos` would
    return pid


async def _readyz(platform: Platform, name: str) -> int:
    url = f"http://127.0.0.1:{platform.specs[name].ops_port}/readyz"
    async with httpx.AsyncClient(timeout=2) as client:
        return (await client.get(url)).status_code


async def test_a_killed_service_is_restarted_on_its_port_and_gets_ready(
    platform: Platform, supervised: Supervised
) -> None:
    await _until(lambda: supervised.services_file.exists(), "services.json written")
    killed = _kill(platform, SERVICE)

    await _until(lambda: f"{SERVICE} ready again" in supervised.lines, "ready again")

    assert supervised.supervisor.restarts == {SERVICE: 1}
    assert platform.children[SERVICE].pid != killed
    assert await _readyz(platform, SERVICE) == 200
    assert supervised.pids()[SERVICE] == platform.children[SERVICE].pid
    crash = next(line for line in supervised.lines if line.startswith(f"{SERVICE} (pid"))
    assert f"pid {killed}" in crash
    assert "killed by SIGKILL" in crash
    assert "restart 1 in" in crash


async def test_a_second_crash_in_a_row_waits_twice_as_long(
    platform: Platform, supervised: Supervised
) -> None:
    _kill(platform, SERVICE)
    await _until(lambda: f"{SERVICE} ready again" in supervised.lines, "ready again")

    killed_at = time.monotonic()
    _kill(platform, SERVICE)
    await _until(lambda: supervised.supervisor.restarts.get(SERVICE) == 2, "restarted twice")
    waited = time.monotonic() - killed_at

    assert waited >= Backoff().delay(2) == 2 * Backoff().delay(1)
    assert any("restart 2 in 1.0s" in line for line in supervised.lines)
    await _until(lambda: supervised.lines.count(f"{SERVICE} ready again") == 2, "ready again")


async def test_a_stop_during_a_backoff_starts_nothing(platform: Platform, tmp_path: Path) -> None:
    running = _supervise(platform, tmp_path, Backoff(initial_s=600, cap_s=600))
    try:
        dead = platform.children[SERVICE]
        _kill(platform, SERVICE)
        await _until(lambda: any("in 600.0s" in line for line in running.lines), "backing off")
        assert SERVICE not in running.pids()  # a dead pid may be handed to another process

        running.stop.set()
        await asyncio.wait_for(running.task, 5)

        assert platform.children[SERVICE] is dead
        assert not dead.alive()
        assert running.supervisor.restarts == {}
    finally:
        running.stop.set()
        await asyncio.wait_for(running.task, 5)
        await _revive(platform)


async def test_fail_fast_names_the_dead_service_and_restarts_nothing(platform: Platform) -> None:
    stop = asyncio.Event()
    try:
        dead = platform.children[SERVICE]
        watching = asyncio.create_task(first_exit(platform, stop, poll_s=0.05))
        _kill(platform, SERVICE)

        assert await asyncio.wait_for(watching, 10) == [SERVICE]
        assert platform.children[SERVICE] is dead
        assert not dead.alive()
    finally:
        await _revive(platform)
    stop.set()
    assert await asyncio.wait_for(first_exit(platform, stop), 5) == []


def test_backoff_doubles_from_half_a_second_up_to_its_cap() -> None:
    backoff = Backoff()
    assert [backoff.delay(n) for n in range(1, 9)] == [0.5, 1, 2, 4, 8, 16, 30, 30]


def test_backoff_streak_grows_with_quick_crashes_and_ends_after_a_long_run() -> None:
    backoff = Backoff(reset_after_s=60)
    assert backoff.streak(0, uptime_s=0.1) == 1
    assert backoff.streak(3, uptime_s=59.9) == 4
    assert backoff.streak(6, uptime_s=60.0) == 1
