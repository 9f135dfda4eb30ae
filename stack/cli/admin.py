"""`otc migrate`, `otc check` and `otc token`: an operator's one-off commands."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from datetime import timedelta
from typing import Annotated

import typer

from otc import endpoints
from otc.auth import AuthConfigError, Role
from otc.settings import Settings, get_settings
from stack.cli.shared import console, mint


def migrate() -> None:
    """Apply the database migrations to OTC_DATABASE_URL."""
    from otc.migrate import upgrade

    asyncio.run(upgrade(get_settings().require("database_url")))
    console.print("migrations applied")


def check(
    grace_s: Annotated[
        float, typer.Option("--grace-s", min=0, help="how long two services may disagree")
    ] = 30.0,
    as_json: Annotated[bool, typer.Option("--json", help="print the breaks as JSON")] = False,
) -> None:
    """Prove the services' books agree (orders, credit, reservations, trades, ledger,
    audit chain) in one snapshot; exit 1 naming every break, 2 if it cannot run."""
    from sqlalchemy.exc import SQLAlchemyError

    from stack.invariants import check_database

    # Fresh settings, not the cached ones: the URL may be the one `otc up` wrote.
    url = endpoints.database_url(Settings())
    if url is None:
        typer.echo("OTC_DATABASE_URL is not set and no local `otc up` is running", err=True)
        raise typer.Exit(2)
    try:
        breaks = asyncio.run(check_database(url, grace=timedelta(seconds=grace_s)))
    except (OSError, SQLAlchemyError) as exc:
        typer.echo(f"invariants not checked: {exc}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        found = [asdict(b) for b in breaks]
        typer.echo(json.dumps({"ok": not breaks, "breaks": found}, indent=2))
    elif breaks:
        for b in breaks:
            typer.echo(f"{b.invariant}: {b.detail}")
        typer.echo(f"invariant breaks: {len(breaks)}")
    else:
        typer.echo("invariants hold")
    raise typer.Exit(1 if breaks else 0)


def token(
    party: Annotated[str, typer.Option(help="party id (the token's sub)")] = "TRADER-A",
    role: Annotated[
        Role, typer.Option(help="trader, market_maker, auditor or admin")
    ] = Role.TRADER,
    ttl_hours: Annotated[float, typer.Option(help="validity in hours")] = 12.0,
) -> None:
    """Mint a development token: HS256 with OTC_JWT_SECRET, or RS256 with
    OTC_JWT_PRIVATE_KEY_FILE."""
    try:
        typer.echo(mint(party, role, timedelta(hours=ttl_hours)))
    except AuthConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
