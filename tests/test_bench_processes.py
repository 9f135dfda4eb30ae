"""CPU and RSS of a process tree, measured on real child processes of the test: a
busy one, a sleeping one with a grandchild, one killed and reaped mid-window, one
left a zombie, and one born mid-window."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from stack.bench.processes import (
    Scope,
    Usage,
    _short_name,
    platform_processes,
    up_root,
)
from stack.bench.report import Report

Spawn = Callable[..., subprocess.Popen[bytes]]


def _busy(seconds: float) -> str:
    return (
        f"import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass"
    )


SLEEP = "import time; time.sleep(20)"
WITH_GRANDCHILD = (
    "import subprocess, sys, time\n"
    f"subprocess.Popen([sys.executable, '-c', {SLEEP!r}])\n"
    "time.sleep(20)"
)


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    started: list[subprocess.Popen[bytes]] = []

    def start(code: str, executable: str = sys.executable) -> subprocess.Popen[bytes]:
        # A session of its own, so one signal to the group takes its grandchild too
        proc = subprocess.Popen([executable, "-c", code], start_new_session=True)
        started.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in started:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _grandchild(parent: subprocess.Popen[bytes]) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        children = psutil.Process(parent.pid).children()
        if children:
            pid: int = children[0].pid
            return pid
        time.sleep(0.02)
    raise AssertionError("the grandchild did not start within 10 s")


def _pids(groups: dict[str, list[psutil.Process]]) -> dict[str, set[int]]:
    return {label: {p.pid for p in processes} for label, processes in groups.items()}


def test_descendants_are_grouped_under_the_label_of_their_named_ancestor(spawn: Spawn) -> None:
    busy, sleeper = spawn(_busy(20)), spawn(WITH_GRANDCHILD)
    grandchild = _grandchild(sleeper)
    names = {busy.pid: "busy", sleeper.pid: "sleeper"}

    groups = _pids(platform_processes(os.getpid(), names, include_root=False))
    assert groups["busy"] == {busy.pid}
    assert groups["sleeper"] == {sleeper.pid, grandchild}

    with_root = _pids(platform_processes(os.getpid(), names, include_root=True))
    assert with_root["supervisor"] == {os.getpid()}
    named_root = platform_processes(os.getpid(), {os.getpid(): "bench"}, include_root=True)
    assert _pids(named_root)["bench"] == {os.getpid()}

    unnamed = _pids(platform_processes(os.getpid(), {busy.pid: "busy"}, include_root=False))
    [label] = [label for label, pids in unnamed.items() if sleeper.pid in pids]
    assert label.startswith("python")
    assert grandchild in unnamed[label]


def test_a_gone_root_has_no_processes() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=10)
    assert platform_processes(proc.pid, {}, include_root=True) == {}


def test_a_versioned_binary_is_labelled_without_its_version() -> None:
    assert _short_name("tansu-v0.6.0-510f3e2") == "tansu"
    assert _short_name("valkey-server") == "valkey-server"
    assert _short_name("postgres") == "postgres"


def test_up_root_is_the_parent_most_services_share(spawn: Spawn) -> None:
    busy, sleeper = spawn(_busy(20)), spawn(WITH_GRANDCHILD)
    grandchild = _grandchild(sleeper)
    assert up_root({"a": busy.pid, "b": sleeper.pid}) == os.getpid()
    assert up_root({"a": busy.pid, "b": sleeper.pid, "c": grandchild}) == os.getpid()
    assert up_root({"a": busy.pid, "c": grandchild}) is None
    assert up_root({}) is None


async def test_a_window_counts_cpu_and_peak_rss_per_label(spawn: Spawn, tmp_path: Path) -> None:
    # the test's other children (a whole platform, in a full run) are labelled
    # `python...` too: the latecomer runs under a name of its own
    latecomer = tmp_path / "latecomer"
    latecomer.symlink_to(sys.executable)
    busy, sleeper = spawn(_busy(20)), spawn(WITH_GRANDCHILD)
    victim, zombie = spawn(_busy(20)), spawn(SLEEP)
    _grandchild(sleeper)
    names = {busy.pid: "busy", sleeper.pid: "sleeper", victim.pid: "victim", zombie.pid: "zombie"}
    usage = Usage(Scope(os.getpid(), names, include_root=False), interval_s=0.2)
    await usage.start()
    await asyncio.sleep(0.5)
    victim.kill()
    victim.wait(timeout=10)
    zombie.kill()  # not reaped until the fixture's cleanup: a zombie for the rest
    late = spawn(_busy(20), str(latecomer))  # unnamed, born mid-window: all its CPU counts
    await asyncio.sleep(0.8)
    window = await usage.stop()
    times = psutil.Process(late.pid).cpu_times()

    # Figures loose enough for a machine busy with other work: any CPU at all for
    # a busy loop, next to none for a sleeper.
    assert 1.2 < window.seconds < 5
    cpu = window.cpu_s
    assert cpu["busy"] > 0.1
    assert cpu["sleeper"] < 0.05
    assert cpu["victim"] > 0.02, "counted up to its last sample"
    assert cpu["zombie"] < 0.05
    # read a moment after the window's last sample, while it still runs
    assert cpu["latecomer"] == pytest.approx(times.user + times.system, abs=0.2)
    assert cpu["latecomer"] > 0
    for label in ("busy", "sleeper", "victim", "zombie"):
        assert window.peak_rss_mb[label] > 1
    assert window.peak_total_rss_mb >= max(window.peak_rss_mb.values())

    report = Report()
    window.record(report, "run")
    figures = report.cpu["run"]
    assert set(figures) == {"window_s", "cores", "processes"}
    assert figures["cores"] == pytest.approx(sum(cpu.values()) / window.seconds, abs=0.02)
    assert figures["processes"]["busy"] == round(cpu["busy"], 2)
    assert set(report.rss_mb["run"]) == {"total", "processes"}
    assert report.rss_mb["run"]["processes"]["busy"] == round(window.peak_rss_mb["busy"], 1)
    json.dumps(report.as_json())
