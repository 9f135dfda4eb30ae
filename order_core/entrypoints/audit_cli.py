"""`otc audit`: what a compliance auditor runs on the order audit trail: verify it
(in the database, or offline from an export, the checkpoints and the public key),
export its events and its signed checkpoints."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from order_core.adapters.audit_log import LogStore
from order_core.adapters.audit_queries import BATCH_SIZE, AuditFilter, reading
from order_core.adapters.checkpoint_file import read_checkpoints
from order_core.adapters.checkpoint_topic import published_checkpoints
from order_core.domain.checkpoints import Checkpoint, checkpoint_json, load_public_key
from order_core.domain.trail_verifier import TrailVerifier, Verdict, exported_event
from order_core.service_layer.audit_proofs import verify_trail
from order_core.service_layer.audit_queries import AuditQueries, ExportFormat
from otc.db import make_engine
from otc.errors import ValidationFailed
from otc.settings import get_settings

audit_app = typer.Typer(no_args_is_help=True, add_completion=False)

BatchSize = Annotated[int, typer.Option(min=1, help="rows read per query")]


@audit_app.callback()
def audit() -> None:
    """The tamper-evident audit trail of orders."""


async def verify_database(
    database_url: str,
    public_key: Ed25519PublicKey | None,
    kept_outside: Sequence[Checkpoint] = (),
    *,
    batch_size: int = BATCH_SIZE,
) -> Verdict:
    engine = make_engine(database_url, pool_size=1)
    try:
        async with reading(engine, isolation_level="REPEATABLE READ") as conn:
            return await verify_trail(conn, public_key, kept_outside, batch_size=batch_size)
    finally:
        await engine.dispose()


def verify_export(
    export: Path, checkpoints: Sequence[Checkpoint], public_key: Ed25519PublicKey
) -> Verdict:
    """Verifies an export (JSON lines) with no database and no network."""
    verifier = TrailVerifier(checkpoints, public_key)
    with export.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            try:
                if not line.strip():
                    continue
                event = exported_event(json.loads(line.decode("utf-8")))
            except (ValueError, RecursionError) as exc:  # undecodable, not JSON, too deep
                return verifier.fail_input(f"{export}, line {number}: {exc}")
            if verifier.check(event) is not None:
                break
    return verifier.finish()


def _public_key(path: Path) -> Ed25519PublicKey:
    try:
        return load_public_key(path.read_bytes())
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--public-key") from None


def _kept(path: Path) -> list[Checkpoint]:
    try:
        return read_checkpoints(path)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--checkpoints") from None


async def signed_checkpoints(database_url: str) -> list[Checkpoint]:
    engine = make_engine(database_url, pool_size=1)
    try:
        async with reading(engine) as conn:
            return await LogStore(conn).checkpoints()
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


def _report(verdict: Verdict, *, signatures: bool) -> None:
    if verdict.finding is not None:
        typer.echo(f"trail broken: {verdict.finding.reason}")
        raise typer.Exit(1)
    unsigned = verdict.events - verdict.signed_size
    typer.echo(
        f"trail intact: {verdict.events} events, {verdict.integrated} in the log, "
        f"root {verdict.root_hash}, {verdict.checkpoints} checkpoints"
        + ("" if signatures else " (signatures not checked: no --public-key)")
    )
    # What no checkpoint covers holds together, but nothing outside vouches for it.
    typer.echo(
        f"signed: the first {verdict.signed_size} events"
        + (f"; the last {unsigned} are not covered by a checkpoint yet" if unsigned else "")
    )


@audit_app.command()
def verify(
    export: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="an export (JSON lines) to verify offline"),
    ] = None,
    checkpoints: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="signed checkpoints, one JSON per line"),
    ] = None,
    public_key: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="the checkpoints' Ed25519 public key (PEM)"),
    ] = None,
    batch_size: BatchSize = BATCH_SIZE,
) -> None:
    """Verify every RFQ's hash chain and the log's Merkle tree against the signed
    checkpoints; exit 1 naming the first event or checkpoint that does not hold.

    With --export, offline: the export, --checkpoints and --public-key are all it
    reads. Without, the trail in OTC_DATABASE_URL, against its checkpoints and
    those in --checkpoints (the copy kept outside the database), if given."""
    if export is not None:
        if checkpoints is None or public_key is None:
            raise typer.BadParameter("--export needs --checkpoints and --public-key")
        _report(verify_export(export, _kept(checkpoints), _public_key(public_key)), signatures=True)
        return
    key = _public_key(public_key) if public_key is not None else None
    kept = _kept(checkpoints) if checkpoints is not None else []
    url = get_settings().require("database_url")
    verdict = asyncio.run(verify_database(url, key, kept, batch_size=batch_size))
    _report(verdict, signatures=key is not None)


@audit_app.command("checkpoints")
def export_checkpoints(
    output: Annotated[
        Path | None, typer.Option(help="file to write (default: standard output)")
    ] = None,
    kafka_bootstrap: Annotated[
        str | None,
        typer.Option(
            help="read them from the audit.checkpoints topic there instead of the database: "
            "the copy a database rewrite does not reach"
        ),
    ] = None,
) -> None:
    """Write the signed checkpoints of OTC_DATABASE_URL (or of the audit.checkpoints
    topic), one JSON object per line, in tree-size order."""
    if kafka_bootstrap is not None:
        published = asyncio.run(published_checkpoints(kafka_bootstrap))
        for where in published.unreadable:
            typer.echo(f"skipped a message that is not a checkpoint at {where}", err=True)
        found = published.checkpoints
    else:
        found = asyncio.run(signed_checkpoints(get_settings().require("database_url")))
    lines = "".join(json.dumps(checkpoint_json(c), sort_keys=True) + "\n" for c in found)
    if output is None:
        sys.stdout.write(lines)
    else:
        output.write_text(lines, encoding="utf-8")


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
    """Write the audit events of OTC_DATABASE_URL, as JSON lines or CSV: the log's in
    log order, then those not yet in it."""
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
