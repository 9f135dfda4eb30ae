"""What operators run: `otc risk ...` against the running service, and the figures
of `otc bench`.

Both open a gRPC channel and an event loop of their own, so they run in a worker
thread while this loop keeps serving the in-process service.
"""

from __future__ import annotations

import asyncio

from typer.testing import CliRunner, Result

from risk_limits.entrypoints.cli import risk_app
from stack.bench.credit import run_risk_bench
from stack.bench.report import Report
from stack.infra.provider import Endpoints
from tests.risk_limits.conftest import Running, name


async def otc_risk(*args: str) -> Result:
    # Wide enough that no table cell wraps a party's name.
    runner = CliRunner(env={"COLUMNS": "200"})
    return await asyncio.to_thread(runner.invoke, risk_app, list(args))


async def test_set_line_exposure_and_set_rate(risk: Running) -> None:
    trader, maker = name("TRADER"), name("MM")
    gross = await otc_risk("set-line", trader, "5000000", "--target", risk.target)
    assert gross.exit_code == 0, gross.output
    assert trader in gross.output
    assert "5000000" in gross.output

    bilateral = await otc_risk(
        "set-line", trader, "1000000", "--counterparty", maker, "--target", risk.target
    )
    assert bilateral.exit_code == 0, bilateral.output
    shown = await otc_risk("exposure", trader, "--counterparty", maker, "--target", risk.target)
    assert shown.exit_code == 0, shown.output
    assert trader in shown.output
    assert f"with {maker}" in shown.output
    assert "1000000" in shown.output

    rate = await otc_risk("set-rate", "GBP", "1.27", "--target", risk.target)
    assert rate.exit_code == 0, rate.output
    assert "1 GBP = 1.27 USD" in rate.output


async def test_refusals_print_the_status_and_exit_1(risk: Running) -> None:
    unknown = await otc_risk("exposure", name("NOBODY"), "--target", risk.target)
    assert unknown.exit_code == 1
    assert "NOT_FOUND" in unknown.output
    assert "no credit line for NOBODY-" in unknown.output
    bad = await otc_risk("set-line", name("TRADER"), "1.001", "--target", risk.target)
    assert bad.exit_code == 1
    assert "INVALID_ARGUMENT" in bad.output
    assert "more decimal places than USD allows" in bad.output


async def test_bench_reports_pairs_beside_grpc_and_postgres(
    risk: Running, endpoints: Endpoints
) -> None:
    report = Report()
    await asyncio.to_thread(
        asyncio.run,
        run_risk_bench(risk.target, endpoints.database_url, report, pairs=40, concurrency=4),
    )
    own = "credit Freeze + Commit, 4 in flight, a pair of lines each"
    hot = "credit Freeze + Commit, 4 in flight, one hot pair"
    grpc, postgres = (
        "gRPC round trip (health check), 4 in flight",
        ("PostgreSQL BEGIN; SELECT 1; COMMIT, 4 in flight"),
    )
    figures = report.as_json()
    assert set(figures["measures"]) == {own, hot}
    assert set(figures["floors"]) == {grpc, postgres}
    for summary in (*figures["measures"].values(), *figures["floors"].values()):
        assert summary["n"] == 40
        assert 0 < summary["p50_ms"] <= summary["p99_ms"] <= summary["max_ms"]
    assert set(figures["rates"]) == {
        own,
        hot,
        "gRPC round trips, 4 in flight",
        "PostgreSQL transactions, 4 in flight",
    }
    assert all(per_second > 0 for per_second in figures["rates"].values())
    assert figures["failures"] == {}
