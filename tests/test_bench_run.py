"""`otc bench` end to end, small, on the session's platform: every run it makes
(sequential with a maker's bot on the gateway, closed loop, open loop) files its
figures, the latency budget lines up with them, and the platform's processes are
measured; and the command refuses rates it cannot use."""

from __future__ import annotations

import json
import os
from pathlib import Path

from typer.testing import CliRunner

from otc.auth import Role
from stack.bench.run import Bench, Options
from stack.bench.target import Target
from stack.bench.timeline import HOPS, LAST_LOOK_HOLD
from stack.cli import app
from stack.cli.shared import console
from stack.infra.platform import Platform
from tests.e2e_helpers import base_url, token_for

SEQUENTIAL, CLOSED, OPEN = 3, 4, 4


async def test_a_small_bench_files_every_figure(platform: Platform, tmp_path: Path) -> None:
    assert platform.endpoints is not None
    target = Target(
        base_url(platform),
        platform.endpoints.database_url,
        f"127.0.0.1:{platform.risk_port}",
        platform.endpoints.redis_url,
        platform.endpoints.kafka_bootstrap,
        gateway_url=f"http://127.0.0.1:{platform.mm_http_port}",
        root_pid=os.getpid(),
        names={child.pid: name for name, child in platform.children.items() if child.pid},
    )
    options = Options(
        sequential=SEQUENTIAL,
        rfqs=CLOSED,
        concurrency=2,
        rates=(float(OPEN),),
        rate_seconds=1,
        idle_seconds=1,
        fetch_wait_ms=platform.settings.kafka_fetch_max_wait_ms,
        floor_samples=20,
        risk_pairs=0,
        quotes=0,
        settlements=0,
        traders=0,
        audit_writers=0,
    )
    report = await Bench(
        target,
        options,
        trader_token=lambda party: token_for(platform, party),
        maker_token=lambda party: token_for(platform, party, Role.MARKET_MAKER),
        console=console,
    ).run()
    path = tmp_path / "bench.json"
    report.write(path)
    figures = json.loads(path.read_text())
    measures, failures = figures["measures"], figures["failures"]

    assert figures["database"]["mode"] in ("development", "durable", "partly durable")
    assert measures["sequential: RFQ -> MM-1's bot on the gateway has it"]["n"] == SEQUENTIAL
    for step in ("RFQ -> first quote", "maker quote published -> trader has it"):
        assert measures[f"sequential: {step}"]["n"] == SEQUENTIAL
    sequential_lost = sum(n for k, n in failures.items() if k.startswith("sequential: "))
    confirmed = measures["sequential: accept -> CONFIRMED"]["n"]
    assert confirmed + sequential_lost == SEQUENTIAL, failures
    for series in (*HOPS[:9], LAST_LOOK_HOLD):
        budget = measures[f"budget, sequential: {series}"]
        # every confirmed deal has each hop; a deal lost on the way has the first ones
        assert confirmed <= budget["n"] <= SEQUENTIAL, series
        assert 0 <= budget["p50_ms"] <= budget["max_ms"] < 30_000, series
    closed = "closed loop, 2 in flight"
    closed_confirmed = measures.get(f"{closed}: accept -> CONFIRMED", {"n": 0})["n"]
    lost = sum(n for name, n in failures.items() if name.startswith(closed))
    assert closed_confirmed + lost == CLOSED
    assert figures["rates"][f"{closed}: RFQs confirmed end to end"] > 0
    opened = f"open loop, {OPEN:g} RFQs/s"
    started = measures.get(f"{opened}: RFQ -> first quote", {"n": 0})["n"]
    assert started + sum(n for k, n in failures.items() if k.startswith(opened)) >= OPEN
    assert started > 0
    for floor in ("PostgreSQL", "Redis", "gRPC", "Kafka"):
        assert any(name.startswith(floor) for name in figures["floors"]), floor
    for phase in ("idle", "sequential", closed, opened):
        assert figures["cpu"][phase]["window_s"] > 0
        assert figures["rss_mb"][phase]["total"] > 0
    assert figures["cpu"]["sequential"]["processes"]["order-core"] > 0
    assert set(figures["cpu"]["sequential"]["processes"]) >= {"rfq-service", "quoter-MM-1"}


def test_the_command_refuses_rates_it_cannot_use() -> None:
    runner = CliRunner()
    for rate, says in (("fast", "not a list of rates"), ("25,-5", "above zero")):
        result = runner.invoke(app, ["bench", "--rate", rate])
        assert result.exit_code == 2, result.output
        assert says in result.output
