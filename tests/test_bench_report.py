"""The bench's report: its percentiles and the JSON schema other runs are compared in."""

from __future__ import annotations

import json
import math
from pathlib import Path

from rich.console import Console

from stack.bench.report import SCHEMA, Report, percentile, summary


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100, shuffled below
    values = values[50:] + values[:50]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 90) == 90.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))


def test_a_summary_names_count_percentiles_and_max() -> None:
    assert summary([3.0, 1.0, 2.0, 10.0]) == {
        "n": 4,
        "p50_ms": 2.0,
        "p90_ms": 10.0,
        "p99_ms": 10.0,
        "max_ms": 10.0,
    }


def test_the_json_has_the_stable_schema(tmp_path: Path) -> None:
    report = Report()
    report.database = {"mode": "durable", "fsync": "on"}
    report.measure("sequential: accept -> CONFIRMED", [40.0, 42.0])
    report.measure("sequential: accept -> CONFIRMED", [44.0])
    report.measure("never measured", [])
    report.floor("PostgreSQL transaction", [1.0, 1.5])
    report.rate("closed loop: RFQs confirmed end to end", 12.345)
    report.fail("open loop, 100 RFQs/s: not confirmed: QUOTED")
    report.fail("open loop, 100 RFQs/s: not confirmed: QUOTED")
    report.cpu["idle"] = {"window_s": 10.0, "cores": 0.05, "processes": {"order-core": 0.2}}
    report.rss_mb["idle"] = {"total": 900.0, "processes": {"order-core": 120.0}}
    report.note("a note")
    path = tmp_path / "bench.json"
    report.write(path)

    written = json.loads(path.read_text())
    assert set(written) == {
        "schema",
        "database",
        "measures",
        "rates",
        "failures",
        "floors",
        "cpu",
        "rss_mb",
        "notes",
    }
    assert written["schema"] == SCHEMA
    assert written["database"]["mode"] == "durable"
    assert written["measures"] == {
        "sequential: accept -> CONFIRMED": {
            "n": 3,
            "p50_ms": 42.0,
            "p90_ms": 44.0,
            "p99_ms": 44.0,
            "max_ms": 44.0,
        }
    }
    assert written["floors"]["PostgreSQL transaction"]["n"] == 2
    assert written["rates"] == {"closed loop: RFQs confirmed end to end": 12.35}
    assert written["failures"] == {"open loop, 100 RFQs/s: not confirmed: QUOTED": 2}
    assert written["cpu"]["idle"]["processes"] == {"order-core": 0.2}
    assert written["rss_mb"]["idle"]["total"] == 900.0
    assert written["notes"] == ["a note"]
    assert not list(tmp_path.glob("*.partial"))


def test_the_printout_says_the_database_mode_and_every_figure() -> None:
    report = Report()
    report.database = {"mode": "development", "fsync": "off"}
    report.measure("sequential: RFQ -> first quote", [12.0])
    report.floor("Redis round trip", [0.2])
    report.rate("closed loop: RFQs confirmed end to end", 9.5)
    report.fail("closed loop: timeout")
    console = Console(record=True, width=200)
    report.print(console)
    text = console.export_text()
    assert "database: development (fsync=off)" in text
    assert "sequential: RFQ -> first quote" in text
    assert "Redis round trip" in text
    assert "closed loop: RFQs confirmed end to end: 9.5/s" in text
    assert "closed loop: timeout" in text
