"""`otc eod --date D`: closes trading day D and writes its reconciliation report.

    otc eod --date 2026-11-22 [--out .otc/reports]   # or --date yesterday

Writes `eod-D.json` and `eod-D.csv` into `--out` and exits 0 when the books
reconcile, 1 when there is a break (each one is in the report with its cause),
2 when the batch could not run (the day has not closed, a service is unreachable).

It talks to each service through that service's own interface: order_core through
a command on `order.commands` and its audit trail (the auditor API, with a token
minted from the platform's signing settings); risk_limits through its gRPC API;
settlement's own database directly. Where they run comes from the `OTC_*`
settings, or from a local `otc up`.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated

import typer

from otc.auth import AuthConfigError, Role, TokenMinter
from otc.clock import Clock, SystemClock
from otc.db import make_engine
from otc.endpoints import database_url, kafka_bootstrap, recorded
from otc.logging import configure
from otc.settings import Settings, get_settings
from settlement.adapters.order_core import OrderCore, OrderCoreUnavailable
from settlement.adapters.risk import Risk, RiskUnavailable
from settlement.bootstrap import rules
from settlement.domain.eod_report import Report, TradingDay
from settlement.service_layer.end_of_day import (
    DayNotClosed,
    EndOfDay,
    InvariantCheck,
    run_end_of_day,
)

OK, BREAKS, FAILED = 0, 1, 2
TOKEN_TTL = timedelta(hours=1)
READER = "settlement-eod"


@dataclass(frozen=True, slots=True)
class Targets:
    database_url: str
    kafka_bootstrap: str
    risk_target: str
    audit_url: str


def business_date(text: str, today: date) -> date:
    if text == "today":
        return today
    if text == "yesterday":
        return today - timedelta(days=1)
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"not a date: {text!r}; use YYYY-MM-DD, today or yesterday", param_hint="--date"
        ) from None


def targets(settings: Settings, *, risk_target: str | None, audit_url: str | None) -> Targets:
    db, bootstrap = database_url(settings), kafka_bootstrap(settings)
    if db is None or bootstrap is None:
        raise typer.BadParameter("set OTC_DATABASE_URL and OTC_KAFKA_BOOTSTRAP, or run `otc up`")
    if audit_url is None:
        # A local `otc up` gives order_core's ops port no fixed number; its edge
        # proxies the audit API on the trader port.
        local = recorded(settings, "database_url") is not None
        explicit = "audit_api_url" in settings.model_fields_set
        local_edge = f"http://127.0.0.1:{settings.http_port}"
        audit_url = local_edge if local and not explicit else settings.audit_api_url
    return Targets(
        database_url=db,
        kafka_bootstrap=bootstrap,
        risk_target=risk_target or recorded(settings, "risk_target") or settings.risk_grpc_target,
        audit_url=audit_url,
    )


async def close_day(
    day: TradingDay,
    targets: Targets,
    settings: Settings,
    *,
    clock: Clock,
    invariants: InvariantCheck,
    settle_wait_s: float = 30.0,
) -> EndOfDay:
    # The verifier checks the token against its own wall clock, whatever day is closed.
    token = TokenMinter.from_settings(settings).mint(
        READER, Role.AUDITOR, now=SystemClock().now(), ttl=TOKEN_TTL
    )
    engine = make_engine(targets.database_url, pool_size=2)
    try:
        return await run_end_of_day(
            day,
            engine=engine,
            clock=clock,
            order_core=OrderCore(
                bootstrap=targets.kafka_bootstrap, audit_url=targets.audit_url, token=token
            ),
            risk=Risk(targets.risk_target),
            retry=rules(settings).retry,
            invariants=invariants,
            settle_wait_s=settle_wait_s,
        )
    finally:
        await engine.dispose()


def write_report(report: Report, out: Path) -> tuple[Path, Path]:
    """Writes the JSON and CSV files, each whole or not at all (a rename)."""
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"eod-{report.day.date.isoformat()}"
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(report.csv_rows())
    paths = (stem.with_suffix(".json"), stem.with_suffix(".csv"))
    for path, content in zip(
        paths, (json.dumps(report.as_dict(), indent=2) + "\n", text.getvalue()), strict=True
    ):
        partial = path.with_suffix(path.suffix + ".partial")
        partial.write_text(content, encoding="utf-8")
        os.replace(partial, path)
    return paths


def eod_command(invariants: InvariantCheck) -> Callable[..., None]:
    """The `otc eod` command, judging the books with the platform's invariant check."""

    def eod(
        date_: Annotated[
            str, typer.Option("--date", help="the business day: YYYY-MM-DD, today or yesterday")
        ] = "yesterday",
        out: Annotated[
            Path | None, typer.Option(help="folder of the reports (default: OTC_STATE_DIR/reports)")
        ] = None,
        risk_target: Annotated[
            str | None, typer.Option(help="host:port of the credit service")
        ] = None,
        audit_url: Annotated[
            str | None, typer.Option(help="base URL of order_core's audit API (or the edge's)")
        ] = None,
        wait: Annotated[
            float, typer.Option(help="seconds a break that may be in flight gets to resolve")
        ] = 30.0,
    ) -> None:
        """Close a trading day: expire open RFQs, expire credit left frozen, settle due
        value-date instructions, reconcile the books; exit 1 on a break."""
        settings = get_settings()
        configure("otc-eod", fmt=settings.log_format, level="WARNING")
        clock = SystemClock()
        day = TradingDay(business_date(date_, clock.now().date()))
        where = targets(settings, risk_target=risk_target, audit_url=audit_url)
        try:
            result = asyncio.run(
                close_day(
                    day, where, settings, clock=clock, invariants=invariants, settle_wait_s=wait
                )
            )
        except (DayNotClosed, OrderCoreUnavailable, RiskUnavailable, AuthConfigError) as exc:
            typer.echo(f"end of day {day.date} not run: {exc}", err=True)
            raise typer.Exit(FAILED) from None
        for line in result.done:
            typer.echo(line)
        report = result.report
        json_path, csv_path = write_report(report, out or settings.state_dir / "reports")
        summary = ", ".join(f"{k} {v}" for k, v in report.summary.items())
        typer.echo(f"{day.date}: {summary}")
        for b in report.breaks[:20]:
            typer.echo(f"BREAK {b.check.value}: {b.subject}: {b.cause}")
        if len(report.breaks) > 20:
            typer.echo(f"... and {len(report.breaks) - 20} more in the report")
        typer.echo(f"report: {json_path} {csv_path}")
        raise typer.Exit(OK if report.ok else BREAKS)

    return eod
