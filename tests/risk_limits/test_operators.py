"""What operators run: `otc risk ...` against the running service, and the figures
of `otc bench`.

Both open a gRPC channel and an event loop of their own, so they run in a worker
thread while this loop keeps serving the in-process service.
"""

from __future__ import annotations

import asyncio

import pytest
from typer.testing import CliRunner, Result

from risk_limits.entrypoints.cli import risk_app
from stack.bench.credit import run_risk_bench
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
    risk: Running, endpoints: Endpoints, capsys: pytest.CaptureFixture[str]
) -> None:
    figures = await asyncio.to_thread(
        asyncio.run,
        run_risk_bench(risk.target, endpoints.database_url, pairs=40, concurrency=4),
    )
    assert set(figures) == {
        f"{prefix}_{figure}"
        for prefix in ("freeze_commit", "grpc_health", "pg_transaction")
        for figure in ("per_s", "p50_ms", "p99_ms")
    }
    assert all(value > 0 for value in figures.values())
    assert figures["freeze_commit_p50_ms"] <= figures["freeze_commit_p99_ms"]
    printed = capsys.readouterr().out
    for row in ("Freeze + Commit", "gRPC round trip", "BEGIN; SELECT 1; COMMIT"):
        assert row in printed
