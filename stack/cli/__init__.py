"""The `otc` command: run the platform, one of its services, the demo or the bench.

Each command lives in the module of its kind (`services`, `up`, `admin`, `drive`,
and each service's own `entrypoints/cli.py`); this puts them on one typer app, in
the order `otc --help` lists them.
"""

from __future__ import annotations

import typer

from order_core.entrypoints.audit_cli import audit_app
from quoting_service.entrypoints.cli import quoter_app
from risk_limits.entrypoints.cli import risk_app
from settlement.entrypoints.cli import eod_command, ledger_app
from stack.cli import admin, drive, services
from stack.cli.up import up
from stack.invariants import check_invariants

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="OTC request-for-quote platform."
)
app.add_typer(audit_app, name="audit", help="Verify and export the tamper-evident audit trail.")
app.add_typer(risk_app, name="risk", help="Credit lines, exposure and reference rates.")
app.add_typer(quoter_app, name="quoter")
app.add_typer(ledger_app, name="ledger")
app.command("eod")(eod_command(check_invariants))
app.command("rfq-service")(services.rfq_service)
app.command("order-core")(services.order_core)
app.command("risk-limits")(services.risk_limits)
app.command("settlement")(services.settlement)
app.command("price-feed")(services.price_feed)
app.command("mm-gateway")(services.mm_gateway)
app.command("migrate")(admin.migrate)
app.command("check")(admin.check)
app.command("token")(admin.token)
app.command("up")(up)
app.command("demo")(drive.demo)
app.command("bench")(drive.bench)
app.command("chaos")(drive.chaos)
