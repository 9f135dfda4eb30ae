"""What one `otc bench` run found, printed as tables and written with `--json` in a
schema that stays stable from run to run, so figures can be compared across commits:

    {"schema": 1,
     "database": {"mode": "durable" | "partly durable" | "development" | "unknown",
                  "fsync", "synchronous_commit", "full_page_writes"},
     "measures": {name: {"n", "p50_ms", "p90_ms", "p99_ms", "max_ms"}},
     "rates": {name: per_second},
     "failures": {name: count},
     "floors": {name: {"n", "p50_ms", "p90_ms", "p99_ms", "max_ms"}},
     "cpu": {phase: {"window_s", "cores", "processes": {name: cpu_seconds}}},
     "rss_mb": {phase: {"total", "processes": {name: megabytes}}},
     "notes": [text]}

A measure is a latency of the platform; a floor is the raw cost of one hop it is
built from (a bare PostgreSQL transaction, Kafka produce -> consume, a Redis or
gRPC round trip), measured in the same run so the two can be read side by side.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

SCHEMA = 1


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile; NaN when there is nothing to rank."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, math.ceil(pct / 100 * len(ordered)) - 1))
    return ordered[index]


def summary(values: list[float]) -> dict[str, float | int]:
    return {
        "n": len(values),
        "p50_ms": round(percentile(values, 50), 3),
        "p90_ms": round(percentile(values, 90), 3),
        "p99_ms": round(percentile(values, 99), 3),
        "max_ms": round(max(values), 3),
    }


@dataclass
class Report:
    database: dict[str, str] = field(default_factory=lambda: {"mode": "unknown"})
    measures: dict[str, list[float]] = field(default_factory=dict)
    rates: dict[str, float] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    floors: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, dict[str, Any]] = field(default_factory=dict)
    rss_mb: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def measure(self, name: str, values: list[float]) -> None:
        if values:
            self.measures.setdefault(name, []).extend(values)

    def floor(self, name: str, values: list[float]) -> None:
        if values:
            self.floors.setdefault(name, []).extend(values)

    def rate(self, name: str, per_second: float) -> None:
        self.rates[name] = round(per_second, 2)

    def fail(self, name: str, count: int = 1) -> None:
        self.failures[name] = self.failures.get(name, 0) + count

    def note(self, text: str) -> None:
        self.notes.append(text)

    def as_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "database": dict(self.database),
            "measures": {name: summary(v) for name, v in self.measures.items() if v},
            "rates": dict(self.rates),
            "failures": dict(self.failures),
            "floors": {name: summary(v) for name, v in self.floors.items() if v},
            "cpu": self.cpu,
            "rss_mb": self.rss_mb,
            "notes": list(self.notes),
        }

    def write(self, path: Path) -> None:
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(self.as_json(), indent=2, sort_keys=True) + "\n")
        partial.replace(path)

    def print(self, console: Console) -> None:
        console.print(f"database: {_mode_line(self.database)}")
        for title, rows in (("measure", self.measures), ("raw floor", self.floors)):
            if rows:
                console.print(_latency_table(title, rows))
        for name, per_second in self.rates.items():
            console.print(f"{name}: {per_second:.1f}/s")
        for phase, figures in self.cpu.items():
            processes = figures["processes"]
            top = sorted(processes.items(), key=lambda item: -item[1])
            console.print(
                f"CPU {phase} ({figures['window_s']:.0f} s): {figures['cores']:.2f} cores; "
                + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in top)
            )
        for phase, figures in self.rss_mb.items():
            console.print(f"RSS {phase}: {figures['total']:.0f} MB in all")
        if self.failures:
            console.print(f"failures: {self.failures}")
        for text in self.notes:
            console.print(text)


def _mode_line(database: dict[str, str]) -> str:
    settings = ", ".join(f"{k}={v}" for k, v in database.items() if k != "mode")
    return database["mode"] + (f" ({settings})" if settings else "")


def _latency_table(title: str, rows: dict[str, list[float]]) -> Table:
    table = Table()
    for column in (title, "n", "p50 ms", "p90 ms", "p99 ms", "max ms"):
        table.add_column(column, justify="left" if column == title else "right")
    for name, values in rows.items():
        if values:
            figures = summary(values)
            table.add_row(
                name,
                str(figures["n"]),
                *(f"{figures[key]:.1f}" for key in ("p50_ms", "p90_ms", "p99_ms", "max_ms")),
            )
    return table
