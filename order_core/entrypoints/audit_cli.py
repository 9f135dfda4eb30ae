"""`otc audit`: what a compliance auditor runs against the order audit trail's
database directly: verify the hash chain, export the rows."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from order_core.service_layer.audit_queries import (
    BATCH_SIZE,
    AuditFilter,
    AuditQueries,
    ExportFormat,
    Verdict,
)
from otc.db import make_engine
from otc.errors import ValidationFailed
from otc.settings import get_settings

audit_app = typer.Typer(no_args_is_help=True, add_completion=False)

BatchSize = Annotated[int, typer.Option(min=1, help="rows read per query")]


@audit_app.callback()
def audit() -> None:
    """The tamper-evident audit trail of orders."""


async def verify_chain(database_url: str, *, batch_size: int = BATCH_SIZE) -> Verdict:
    engine = make_engine(database_url, pool_size=1)
    try:
        return await AuditQueries(engine, batch_size=batch_size).verify()
    finally:
        await engine.dispose()


async def export_trail(
    database_url: str,
    where: AuditFilter,
    fmt: ExportFormat,
    write: Callable[[str], object],
    *,
    batch_size: int = BATCH_SIZE,
) -> None:
    engine = make_engine(database_url, pool_size=1)
    try:
        async for chunk in AuditQueries(engine, batch_size=batch_size).export(where, fmt):
            write(chunk)
    finally:
        await engine.dispose()


def _instant(name: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"not an ISO 8601 time: {text!r}", param_hint=name) from None


@audit_app.command()
def verify(batch_size: BatchSize = BATCH_SIZE) -> None:
    """Recompute the hash chain of OTC_DATABASE_URL; exit 1 naming the first bad row."""
    url = get_settings().require("database_url")
    verdict = asyncio.run(verify_chain(url, batch_size=batch_size))
    if verdict.broken is not None:
        typer.echo(f"chain broken at seq {verdict.broken.seq}: {verdict.broken.reason}")
        raise typer.Exit(1)
    typer.echo(f"chain intact: {verdict.events} events, head {verdict.head_hash}")


@audit_app.command()
def export(
    fmt: Annotated[ExportFormat, typer.Option("--format", help="jsonl or csv")],
    rfq_id: Annotated[str | None, typer.Option(help="one RFQ's events")] = None,
    party: Annotated[
        str | None, typer.Option(help="events the party took part in, as trader or maker")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="occurred at or after, ISO 8601 UTC: 2026-01-31T00:00:00Z")
    ] = None,
    until: Annotated[str | None, typer.Option(help="occurred before, ISO 8601 UTC")] = None,
    output: Annotated[
        Path | None, typer.Option(help="file to write (default: standard output)")
    ] = None,
    batch_size: BatchSize = BATCH_SIZE,
) -> None:
    """Write the audit events of OTC_DATABASE_URL in chain order, as JSON lines or CSV."""
    try:
        where = AuditFilter(
            rfq_id=rfq_id,
            party=party,
            since=_instant("--since", since),
            until=_instant("--until", until),
        )
    except ValidationFailed as exc:
        raise typer.BadParameter(exc.message) from None
    url = get_settings().require("database_url")
    if output is None:
        asyncio.run(export_trail(url, where, fmt, sys.stdout.write, batch_size=batch_size))
        return
    # newline="": the CSV rows carry their own CRLF line ends
    with output.open("w", encoding="utf-8", newline="") as file:
        asyncio.run(export_trail(url, where, fmt, file.write, batch_size=batch_size))
