"""CPU seconds and RSS of every process of a running platform over a time window.

The platform is a process tree: `otc up` (or the bench itself, when it starts a
platform of its own) is the root, and below it are the embedded servers and one
process per service. Each process is counted under a label: its service name when
its pid is named, else its parent's label, else (a server the root started) a short
name from its executable, so PostgreSQL's backends count as `postgres` and a
service's own subprocesses as that service.

    root = up_root(services)  # `services.json` of `otc up`; None when it is not running
    scope = Scope(root, {pid: name for name, pid in services.items()}, include_root=True)
    usage = Usage(scope)
    await usage.start()
    try:
        await run_load()
    finally:
        window = await usage.stop()
    window.record(report, "run")
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass

import psutil

from stack.bench.report import Report

MB = 1024 * 1024


def _short_name(process_name: str) -> str:
    """`tansu-v0.6.0-510f3e2` -> `tansu`: the version in a binary's file name would
    make the label change with every upgrade."""
    return re.split(r"-v?\d", process_name, maxsplit=1)[0] or process_name


def platform_processes(
    root_pid: int, names: Mapping[int, str], *, include_root: bool
) -> dict[str, list[psutil.Process]]:
    """Every live descendant of `root_pid`, grouped by label; {} once the root is gone."""
    try:
        root = psutil.Process(root_pid)
        descendants = root.children(recursive=True)
    except psutil.Error:
        return {}
    parents: dict[int, int] = {}
    alive: dict[int, psutil.Process] = {}
    for process in descendants:
        with suppress(psutil.Error):  # it died since the walk: nothing left to measure
            parents[process.pid] = process.ppid()
            alive[process.pid] = process
    labels: dict[int, str] = {}

    def label(pid: int) -> str:
        if pid not in labels:
            if pid in names:
                labels[pid] = names[pid]
            elif parents[pid] in alive:
                labels[pid] = label(parents[pid])
            else:
                labels[pid] = _short_name(alive[pid].name())
        return labels[pid]

    groups: dict[str, list[psutil.Process]] = {}
    if include_root:
        groups[names.get(root_pid, "supervisor")] = [root]
    for pid, process in alive.items():
        with suppress(psutil.Error):
            groups.setdefault(label(pid), []).append(process)
    return groups


def up_root(services: Mapping[str, int]) -> int | None:
    """The `otc up` process, from its `services.json`: the parent of most of the live
    services, so one stale pid the kernel gave to another process cannot mislead it;
    None when no live services share a parent."""
    parents: Counter[int] = Counter()
    for pid in services.values():
        with suppress(psutil.Error):
            parents[psutil.Process(pid).ppid()] += 1
    if not parents:
        return None
    parent, count = parents.most_common(1)[0]
    return parent if count * 2 > sum(parents.values()) else None


@dataclass(frozen=True)
class Scope:
    """Which processes are the platform: the descendants of `root_pid`, and the root
    itself when it does the platform's work (the `otc up` supervisor) rather than
    the measuring (the bench)."""

    root_pid: int
    names: Mapping[int, str]
    include_root: bool

    def processes(self) -> dict[str, list[psutil.Process]]:
        return platform_processes(self.root_pid, self.names, include_root=self.include_root)


@dataclass(frozen=True)
class Window:
    seconds: float
    cpu_s: dict[str, float]
    peak_rss_mb: dict[str, float]
    peak_total_rss_mb: float

    def record(self, report: Report, phase: str) -> None:
        total = sum(self.cpu_s.values())
        report.cpu[phase] = {
            "window_s": round(self.seconds, 2),
            "cores": round(total / self.seconds, 2) if self.seconds > 0 else 0.0,
            "processes": {label: round(s, 2) for label, s in sorted(self.cpu_s.items())},
        }
        report.rss_mb[phase] = {
            "total": round(self.peak_total_rss_mb, 1),
            "processes": {label: round(mb, 1) for label, mb in sorted(self.peak_rss_mb.items())},
        }


@dataclass
class _Tracked:
    label: str
    # CPU seconds when the window began for this process: None until first read
    baseline: float | None
    last: float = 0.0

    def used(self) -> float:
        return self.last - self.baseline if self.baseline is not None else 0.0


class Usage:
    """Samples a scope from `start()` to `stop()`, every `interval_s` in between;
    one window per instance.

    A process first seen after the start was born during the window, so all its CPU
    counts; one that dies counts up to its last sample. RSS is summed over a label's
    processes at each sample, so pages they share (PostgreSQL's shared buffers) count
    once per process: an upper bound. The total is the peak of the sum over all
    labels, not the sum of each label's peak, which need not coincide.
    """

    def __init__(self, scope: Scope, interval_s: float = 0.5) -> None:
        self.scope = scope
        self.interval_s = interval_s
        self._tracked: dict[psutil.Process, _Tracked] = {}
        # Retired but maybe still in the tree (unreadable, a zombie): never to come
        # back as newborn, with all its CPU counted a second time
        self._gone: set[psutil.Process] = set()
        self._retired_cpu: dict[str, float] = {}
        self._peak_rss: dict[str, float] = {}
        self._peak_total_rss = 0.0
        self._started_at = 0.0
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # Sampling reads /proc for every process: off the event loop, so a bench's
        # own latencies are not measured with the sampler's pauses in them.
        self._started_at = time.monotonic()
        await asyncio.to_thread(self._sample, first=True)
        self._task = asyncio.create_task(self._sample_until_stopped())

    async def stop(self) -> Window:
        self._stopping.set()
        if self._task is not None:
            await self._task
        await asyncio.to_thread(self._sample, first=False)
        seconds = time.monotonic() - self._started_at
        cpu = dict(self._retired_cpu)
        for tracked in self._tracked.values():
            cpu[tracked.label] = cpu.get(tracked.label, 0.0) + tracked.used()
        return Window(
            seconds=seconds,
            cpu_s=cpu,
            peak_rss_mb={label: peak / MB for label, peak in self._peak_rss.items()},
            peak_total_rss_mb=self._peak_total_rss / MB,
        )

    async def _sample_until_stopped(self) -> None:
        # Waits for the in-flight sample rather than being cancelled, so the final
        # sample of `stop()` never runs alongside it in another thread.
        while True:
            try:
                await asyncio.wait_for(self._stopping.wait(), self.interval_s)
            except TimeoutError:
                await asyncio.to_thread(self._sample, first=False)
            else:
                return

    def _sample(self, *, first: bool) -> None:
        for label, processes in self.scope.processes().items():
            for process in processes:
                if process not in self._tracked and process not in self._gone:
                    self._tracked[process] = _Tracked(label, None if first else 0.0)
        rss: dict[str, float] = {}
        for process, tracked in list(self._tracked.items()):
            try:
                # is_running() also tells a reused pid from the process seen before
                if not process.is_running():
                    raise psutil.NoSuchProcess(process.pid)
                with process.oneshot():
                    times = process.cpu_times()
                    resident = float(process.memory_info().rss)
            except psutil.Error:
                self._retire(process)
                continue
            tracked.last = float(times.user + times.system)
            if tracked.baseline is None:
                tracked.baseline = tracked.last
            rss[tracked.label] = rss.get(tracked.label, 0.0) + resident
        for label, resident in rss.items():
            self._peak_rss[label] = max(self._peak_rss.get(label, 0.0), resident)
        self._peak_total_rss = max(self._peak_total_rss, sum(rss.values()))

    def _retire(self, process: psutil.Process) -> None:
        tracked = self._tracked.pop(process)
        self._gone.add(process)
        label = tracked.label
        self._retired_cpu[label] = self._retired_cpu.get(label, 0.0) + tracked.used()
