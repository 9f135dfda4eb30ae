"""Choosing a service to kill, and signalling only what is one of ours.

A pid comes from the services file `otc up` keeps, and is signalled only if its
command line still is one of our services: the kernel reuses the numbers of dead
processes, and an embedded server (or this very process) must never be hit.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from .report import Chaos


def read_services(path: Path) -> dict[str, int]:
    try:
        found: dict[str, int] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return found


def is_service(pid: int) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    # `stack.infra.platform` starts every service as `python -m stack.cli <service>`
    return b"stack.cli" in argv and pid not in (os.getpid(), os.getppid())


def kill_service(pid: int) -> bool:
    """SIGKILL to `pid` if it still is one of our services; whether it was sent."""
    if not is_service(pid):
        return False
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


async def kill_services(
    services_file: Path, rng: random.Random, plan: Chaos, say: Callable[[str], None]
) -> Counter[str]:
    """`plan.kills` times, one every `plan.interval_s`: a random live service, kill -9."""
    killed: Counter[str] = Counter()
    # A SIGKILL takes effect a moment later (longer on a loaded machine): until then
    # the pid still looks like a live service, and must not be signalled again.
    signalled: set[int] = set()
    for _ in range(plan.kills):
        await asyncio.sleep(plan.interval_s)
        pids = read_services(services_file)
        if not pids:
            say("no live service to kill: all of them are restarting")
            continue
        name = rng.choice(sorted(pids))
        if pids[name] not in signalled and kill_service(pids[name]):
            signalled.add(pids[name])
            killed[name] += 1
            say(f"kill -9 {name} (pid {pids[name]})")
        else:
            say(f"{name} (pid {pids[name]}) is gone already; spared")
    return killed
