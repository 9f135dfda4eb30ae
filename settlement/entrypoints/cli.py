"""`otc ledger`: what an admin does to settlement's ledger, and `otc eod`.

    otc ledger deposit TRADER-A USD 1000000 [--reference R] [--memo M]
    otc ledger withdraw TRADER-A USD 500 [--reference R]
    otc ledger balances [TRADER-A]
    otc ledger block TRADER-A [--asset BTC] [--reason "KYC review"]
    otc ledger unblock TRADER-A [--asset BTC]

A funding move is idempotent on its reference: give the same `--reference` when
retrying one, so that it is booked once. A refusal prints why and exits with 1.
The database is OTC_DATABASE_URL, or the one a local `otc up` runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from otc.clock import SystemClock
from otc.db import make_engine
from otc.endpoints import database_url
from otc.errors import DomainError
from otc.ids import new_id
from otc.logging import configure
from otc.money import fmt
from otc.settings import get_settings
from settlement.entrypoints.eod import eod_command
from settlement.service_layer import funding
from settlement.service_layer.unit_of_work import SettlementUnitOfWork

__all__ = ["eod_command", "ledger_app"]

T = TypeVar("T")

ledger_app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Balances, deposits, withdrawals and blocked accounts of the settlement ledger.",
)

Party = Annotated[str, typer.Argument(help="the party, e.g. TRADER-A")]
Asset = Annotated[str, typer.Argument(help="the asset, e.g. USD or BTC")]
Amount = Annotated[str, typer.Argument(help="a positive decimal amount")]
Reference = Annotated[
    str | None, typer.Option(help="the move's id: a retry with the same id books nothing new")
]
Memo = Annotated[str, typer.Option(help="why, for the journal")]
OneAsset = Annotated[str | None, typer.Option("--asset", help="one account (default: all)")]


def _run(work: Callable[[SettlementUnitOfWork], Awaitable[T]]) -> T:
    settings = get_settings()
    # The command prints what it did; the service's own info logs would only repeat it.
    configure("otc-ledger", fmt=settings.log_format, level="WARNING")
    url = database_url(settings)
    if url is None:
        typer.echo("OTC_DATABASE_URL is not set and no local `otc up` is running", err=True)
        raise typer.Exit(2)

    async def main() -> T:
        engine = make_engine(url, pool_size=1)
        try:
            uow = SettlementUnitOfWork(engine, clock=SystemClock())
            return await work(uow)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(main())
    except DomainError as exc:
        typer.echo(f"refused ({exc.code}): {exc.message}", err=True)
        raise typer.Exit(1) from None


def _moved(move: funding.Funding) -> None:
    party, asset = move.account
    if move.booked:
        typer.echo(f"{party} {asset} {fmt(move.amount)} booked")
    else:
        typer.echo(f"{party} {asset}: this reference was booked before; nothing moved")


@ledger_app.command()
def deposit(
    party: Party, asset: Asset, amount: Amount, reference: Reference = None, memo: Memo = ""
) -> None:
    """Credit a party's account with funds from outside the platform."""
    ref = reference or new_id()
    _moved(_run(lambda uow: funding.deposit(uow, party, asset, amount, ref, memo)))


@ledger_app.command()
def withdraw(
    party: Party, asset: Asset, amount: Amount, reference: Reference = None, memo: Memo = ""
) -> None:
    """Pay funds out of a party's account; refused beyond its balance."""
    ref = reference or new_id()
    _moved(_run(lambda uow: funding.withdraw(uow, party, asset, amount, ref, memo)))


@ledger_app.command()
def balances(
    party: Annotated[str | None, typer.Argument(help="one party (default: all)")] = None,
) -> None:
    """Show balances, and which accounts are blocked."""
    rows = _run(lambda uow: funding.accounts(uow, party))
    table = Table(show_edge=False)
    for column in ("party", "asset", "balance", "blocked"):
        table.add_column(column, justify="right" if column == "balance" else "left")
    for row in rows:
        blocked = (row.blocked_reason or "yes") if row.blocked else ""
        table.add_row(row.account.party, row.account.asset, fmt(row.amount), blocked)
    Console().print(table)


@ledger_app.command()
def block(
    party: Party,
    asset: OneAsset = None,
    reason: Annotated[str, typer.Option(help="why, shown with every refusal")] = "",
) -> None:
    """Block accounts: nothing settles against them, nothing moves in or out."""
    changed = _run(lambda uow: funding.set_blocked(uow, party, asset, blocked=True, reason=reason))
    typer.echo(f"blocked: {', '.join(f'{a.party} {a.asset}' for a in changed)}")


@ledger_app.command()
def unblock(party: Party, asset: OneAsset = None) -> None:
    """Lift a block; trades waiting for a retry settle at their next attempt."""
    changed = _run(lambda uow: funding.set_blocked(uow, party, asset, blocked=False))
    typer.echo(f"unblocked: {', '.join(f'{a.party} {a.asset}' for a in changed)}")
