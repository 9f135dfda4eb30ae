"""Keeps `otc up`'s services running, as Kubernetes keeps a pod's containers.

A service that exits is started again with the same spec and ports, after a delay
that doubles with each crash in a row up to a cap (Kubernetes' CrashLoopBackOff), so
a service that cannot start does not spin the machine; one that ran long enough
before it crashed starts its streak afresh. Each restart waits for its service to
be ready in a task of its own, so one slow or looping service never holds up the
supervision of the others. Spawning happens on the event loop, in the main thread,
because a child's death signal follows the thread that spawned it
(`stack.infra.processes`).

The live pids are kept in `services.json` in the state dir, for scripts that must
find the processes (`otc chaos`); a pid leaves the file as soon as its process is
seen dead, since the kernel may hand the number to another process.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from stack.infra.platform import Platform
from stack.infra.processes import Child

SERVICES_FILE = "services.json"


@dataclass(frozen=True, slots=True)
class Backoff:
    """When to restart a crashed service: a pure policy, tested without processes."""

    initial_s: float = 0.5
    factor: float = 2.0
    cap_s: float = 30.0
    reset_after_s: float = 60.0

    def streak(self, previous: int, uptime_s: float) -> int:
        """Crashes in a row, this one included; a run of `reset_after_s` ends a streak."""
        return 1 if uptime_s >= self.reset_after_s else previous + 1

    def delay(self, streak: int) -> float:
        return float(min(self.cap_s, self.initial_s * self.factor ** (streak - 1)))


def exit_reason(child: Child) -> str:
    code = child.proc.returncode if child.proc is not None else None
    if code is None:
        return "stopped"
    if code >= 0:
        return f"exited with code {code}"
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"killed by signal {-code}"


def write_services(path: Path, children: Mapping[str, Child]) -> None:
    """{service: pid} of the live children, replaced whole so no reader sees half."""
    live = {name: child.pid for name, child in children.items() if child.alive()}
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(live, indent=2))
    os.replace(partial, path)


async def first_exit(platform: Platform, stop: asyncio.Event, poll_s: float = 1.0) -> list[str]:
    """`otc up --fail-fast`: the services that exited, as soon as one has; [] once
    `stop` is set."""
    while not stop.is_set():
        dead = [name for name, child in platform.children.items() if not child.alive()]
        if dead:
            return dead
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), poll_s)
    return []


class Supervisor:
    def __init__(
        self,
        platform: Platform,
        *,
        backoff: Backoff = Backoff(),
        say: Callable[[str], None] = print,
        services_file: Path | None = None,
        ready_timeout_s: float = 90.0,
        poll_s: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.restarts: dict[str, int] = {}
        self._platform = platform
        self._backoff = backoff
        self._say = say
        self._services_file = services_file
        self._ready_timeout_s = ready_timeout_s
        self._poll_s = poll_s
        self._clock = clock
        self._sleep = sleep
        self._streaks: dict[str, int] = {}
        # when each service's current process started, as far as the supervisor knows
        self._started: dict[str, float] = {}
        self._restarting: dict[str, asyncio.Task[None]] = {}

    async def run(self, stop: asyncio.Event) -> None:
        """Supervises until `stop` is set; a restart still backing off is dropped then,
        and one already spawned is left to the platform's `stop()`."""
        self._publish()
        try:
            while not stop.is_set():
                self._watch()
                with suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._poll_s)
        finally:
            pending = list(self._restarting.values())
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def summary(self) -> str:
        counts = ", ".join(f"{name} {n}" for name, n in sorted(self.restarts.items()))
        return f"restarts: {counts or 'none'}"

    def _watch(self) -> None:
        now = self._clock()
        for name, child in list(self._platform.children.items()):
            self._started.setdefault(name, now)
            if child.alive() or name in self._restarting:
                continue
            task = asyncio.create_task(self._restart(name, child, now))
            self._restarting[name] = task
            task.add_done_callback(partial(self._restarted, name))

    def _restarted(self, name: str, _: asyncio.Task[None]) -> None:
        self._restarting.pop(name, None)

    async def _restart(self, name: str, dead: Child, seen_at: float) -> None:
        dead.stop()  # reaps it and closes its log file
        self._publish()
        uptime = seen_at - self._started[name]
        streak = self._backoff.streak(self._streaks.get(name, 0), uptime)
        self._streaks[name] = streak
        delay = self._backoff.delay(streak)
        number = self.restarts.get(name, 0) + 1
        self._say(
            f"{name} (pid {dead.pid}) {exit_reason(dead)} after {uptime:.1f}s up; "
            f"restart {number} in {delay:.1f}s"
        )
        await self._sleep(delay)
        if self._platform.children.get(name) is not dead:
            return  # started again meanwhile by someone else (`Platform.restart`)
        self._started[name] = self._clock()
        try:
            child = self._platform.spawn(self._platform.specs[name])
        except OSError as exc:  # the next watch tries again, one step further back
            self._say(f"{name} could not be started: {exc}")
            return
        self.restarts[name] = number
        self._publish()
        self._say(f"{name} restarted as pid {child.pid} (restart {number})")
        try:
            await self._platform.wait_ready(name, self._ready_timeout_s)
        except (RuntimeError, TimeoutError) as exc:
            # an exit is seen by the next watch and backs off again; a service that
            # never gets ready keeps running, as an unready pod does
            self._say(str(exc))
            return
        self._say(f"{name} ready again")

    def _publish(self) -> None:
        if self._services_file is not None:
            write_services(self._services_file, self._platform.children)
