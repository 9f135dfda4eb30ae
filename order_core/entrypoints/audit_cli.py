"""`otc audit`: what a compliance auditor runs to check the order audit trail."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated

import typer

from order_core.adapters.audit import AuditLog
from order_core.domain.audit import ChainBreak, ChainVerifier
from otc.db import make_engine
from otc.settings import get_settings

audit_app = typer.Typer(no_args_is_help=True, add_completion=False)


# A callback makes this a group even while it has a single command, so it is
# `audit verify` both on its own and mounted under `otc`.
@audit_app.callback()
def audit() -> None:
    """The tamper-evident audit trail of orders."""


@dataclass(frozen=True, slots=True)
class Verdict:
    events: int
    head_hash: str
    broken: ChainBreak | None


async def verify_chain(database_url: str, *, batch_size: int = 1000) -> Verdict:
    """Recomputes the whole chain in seq order, in batches, from one snapshot, so
    rows appended meanwhile neither break it nor disagree with the head."""
    engine = make_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            snapshot = await conn.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
            async with snapshot.begin():
                log = AuditLog(snapshot)
                head_seq, head_hash = await log.head()
                verifier = ChainVerifier()
                after = 0
                while batch := await log.events(after_seq=after, limit=batch_size):
                    for row in batch:
                        broken = verifier.check(row)
                        if broken is not None:
                            return Verdict(verifier.count, verifier.last_hash, broken)
                    after = batch[-1].seq
                broken = verifier.check_head(head_seq, head_hash)
                return Verdict(verifier.count, verifier.last_hash, broken)
    finally:
        await engine.dispose()


@audit_app.command()
def verify(
    batch_size: Annotated[int, typer.Option(min=1, help="rows read per query")] = 1000,
) -> None:
    """Recompute the hash chain of OTC_DATABASE_URL; exit 1 naming the first bad row."""
    url = get_settings().require("database_url")
    verdict = asyncio.run(verify_chain(url, batch_size=batch_size))
    if verdict.broken is not None:
        typer.echo(f"chain broken at seq {verdict.broken.seq}: {verdict.broken.reason}")
        raise typer.Exit(1)
    typer.echo(f"chain intact: {verdict.events} events, head {verdict.head_hash}")
