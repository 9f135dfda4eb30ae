"""`otc risk`: what operators do to the credit service, through its gRPC API, so that
their input meets the same validation as every other caller's.

    otc risk set-line TRADER-A 5000000 [--currency USD] [--counterparty MM-1]
    otc risk exposure TRADER-A [--counterparty MM-1]
    otc risk set-rate EUR 1.08

Each command prints what the service answered; a refusal prints its gRPC status
and message and exits with 1.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import grpc
import typer
from rich.console import Console
from rich.table import Table

from otc.contracts import risk_limits_pb2 as pb
from otc.contracts import risk_limits_pb2_grpc as pb_grpc
from otc.settings import get_settings

T = TypeVar("T")

CALL_TIMEOUT_S = 5.0

risk_app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Credit lines, exposure and reference rates of the credit service.",
)

Target = Annotated[
    str | None,
    typer.Option(
        "--target",
        help="host:port of the credit service (default: OTC_RISK_GRPC_HOST:OTC_RISK_GRPC_PORT)",
    ),
]
Counterparty = Annotated[
    str,
    typer.Option(help="the bilateral line with this counterparty instead of the gross line"),
]


def _call(target: str | None, call: Callable[[pb_grpc.RiskLimitsStub], Awaitable[T]]) -> T:
    address = target or get_settings().risk_grpc_target

    async def main() -> T:
        async with grpc.aio.insecure_channel(address) as channel:
            return await call(pb_grpc.RiskLimitsStub(channel))

    try:
        return asyncio.run(main())
    except grpc.aio.AioRpcError as exc:
        console = Console()
        console.print(f"[red]{exc.code().name}[/red]: {exc.details()}")
        if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            console.print(f"is the credit service running at {address}? (see --target)")
        raise typer.Exit(1) from None


def _print_exposure(line: pb.Exposure) -> None:
    table = Table(show_edge=False)
    for column in ("party", "line", "currency"):
        table.add_column(column)
    for column in ("limit", "used", "frozen", "available"):
        table.add_column(column, justify="right")
    kind = f"with {line.counterparty}" if line.counterparty else "gross"
    table.add_row(
        line.party, kind, line.currency, line.limit, line.used, line.frozen, line.available
    )
    Console().print(table)


@risk_app.command("set-line")
def set_line(
    party: Annotated[str, typer.Argument(help="the party whose credit the line limits")],
    limit: Annotated[str, typer.Argument(help="the limit, a decimal in the line's currency")],
    currency: Annotated[str, typer.Option(help="the line's currency")] = "USD",
    counterparty: Counterparty = "",
    target: Target = None,
) -> None:
    """Create or resize a credit line (gross, or bilateral with --counterparty)."""
    request = pb.SetCreditLineRequest(
        party=party, counterparty=counterparty, currency=currency, limit=limit
    )
    _print_exposure(_call(target, lambda stub: stub.SetCreditLine(request, timeout=CALL_TIMEOUT_S)))


@risk_app.command("exposure")
def exposure(
    party: Annotated[str, typer.Argument(help="the party whose line to show")],
    counterparty: Counterparty = "",
    target: Target = None,
) -> None:
    """Show a line's limit, used, frozen and available credit."""
    request = pb.GetExposureRequest(party=party, counterparty=counterparty)
    _print_exposure(_call(target, lambda stub: stub.GetExposure(request, timeout=CALL_TIMEOUT_S)))


@risk_app.command("set-rate")
def set_rate(
    currency: Annotated[str, typer.Argument(help="a three-letter currency code, e.g. EUR")],
    rate: Annotated[str, typer.Argument(help="what one unit is worth in USD, e.g. 1.08")],
    target: Target = None,
) -> None:
    """Set the reference rate that converts notionals into a line's currency."""
    request = pb.SetReferenceRateRequest(currency=currency, rate_in_usd=rate)
    answer = _call(target, lambda stub: stub.SetReferenceRate(request, timeout=CALL_TIMEOUT_S))
    Console().print(f"1 {answer.currency} = {answer.rate_in_usd} USD")
