"""The `otc chaos` command: find this machine's `otc up`, run the drill, check the
books, judge."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from otc.db import make_engine
from otc.settings import Settings
from stack.client import TraderClient
from stack.infra.supervisor import SERVICES_FILE
from stack.invariants import Break, check_invariants

from .kills import kill_services
from .report import Chaos, Report
from .traders import FINAL_WAIT_S, Traders

TRADERS = ("TRADER-A", "TRADER-B")
Say = Callable[[str], None]


async def drill(
    settings: Settings,
    *,
    kills: int,
    interval_s: float,
    seed: int | None,
    rfqs_per_s: float,
    database_url: str | None,
    mint: Callable[[str], str],
    say: Say,
) -> int:
    """0 if the platform came through, 1 if not, 2 if no `otc up` runs here."""
    services_file = settings.state_dir / SERVICES_FILE
    if database_url is None or not services_file.exists():
        say(f"no `otc up` runs here: {services_file} not found")
        return 2
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
    plan = Chaos(kills, interval_s, seed, rfqs_per_s)
    api = f"http://127.0.0.1:{settings.http_port}"
    async with AsyncExitStack() as stack:
        try:
            clients = [
                await stack.enter_async_context(TraderClient(api, mint(party))) for party in TRADERS
            ]
        except (OSError, TimeoutError) as exc:
            say(f"the trader edge at {api} does not answer: {exc!r}")
            return 2
        report = await run_chaos(plan, clients, services_file=services_file, say=say)
    report.breaks = await check(database_url, say)
    for line in report.lines():
        say(line)
    return 1 if report.problems() else 0


async def run_chaos(
    plan: Chaos, clients: Sequence[TraderClient], *, services_file: Path, say: Say
) -> Report:
    """Kills while the traders trade, then waits (bounded) until every RFQ has ended."""
    say(f"seed {plan.seed}: {plan.kills} kills, one every {plan.interval_s}s")
    # seeded on purpose, so a run can be repeated: these choose faults, not secrets
    traders = Traders(clients, random.Random(f"{plan.seed}-traffic"))  # noqa: S311
    stop = asyncio.Event()
    flowing = asyncio.create_task(traders.flow(plan.rfqs_per_s, stop))
    try:
        victims = random.Random(plan.seed)  # noqa: S311
        kills = await kill_services(services_file, victims, plan, say)
    except BaseException:
        flowing.cancel()
        raise
    stop.set()
    await flowing
    say(f"kills done; waiting up to {FINAL_WAIT_S:.0f}s for {len(traders.rfqs)} RFQs to end")
    await traders.finish()
    return Report(plan.seed, traders.rfqs, kills, traders.unanswered, traders.missed)


async def check(database_url: str, say: Say) -> list[Break] | None:
    engine = make_engine(database_url, pool_size=1)
    try:
        return await check_invariants(engine)
    except (OSError, SQLAlchemyError) as exc:
        say(f"invariants not checked: {exc}")
        return None
    finally:
        await engine.dispose()
