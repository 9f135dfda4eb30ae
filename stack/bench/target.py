"""Where the platform a bench measures runs: its API, its servers and its processes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Target:
    api: str
    # known when we started it, or when `otc up` wrote down where it runs them
    database_url: str | None
    risk_target: str | None
    redis_url: str | None = None
    kafka_bootstrap: str | None = None
    gateway_url: str | None = None
    # the platform's processes: every descendant of `root_pid`, named where known
    root_pid: int | None = None
    names: Mapping[int, str] = field(default_factory=dict)
    include_root: bool = False
