"""One `otc bench` run over a platform (`Target` says where it runs): which figures
it takes, and in which order.

The order keeps the figures apart: the idle window first, before anything has been
sent; the floors next, on a quiet platform; then the runs from the lightest
(sequential) to the heaviest (open loop at the highest rate), and the component
benches last, since they add load of their own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass

from rich.console import Console

from otc.db import make_engine
from risk_limits.seed import seed_demo_credit
from settlement.seed import seed_demo_balances
from stack.bench import platform as runs
from stack.bench.database_mode import database_mode
from stack.bench.deals import Deal
from stack.bench.floors import measure_floors
from stack.bench.processes import Scope, Usage
from stack.bench.report import Report
from stack.bench.target import Target
from stack.bench.timeline import Timeline, budget
from stack.seed import MAKERS


@dataclass(frozen=True)
class Options:
    sequential: int = 100
    rfqs: int = 200
    concurrency: int = 8
    rates: tuple[float, ...] = (25.0, 50.0, 100.0)
    rate_seconds: float = 60.0
    idle_seconds: float = 10.0
    quantity: str = "0.1"
    fetch_wait_ms: int = 20
    floor_samples: int = 200
    risk_pairs: int = 300
    quotes: int = 500
    settlements: int = 100
    traders: int = 200
    audit_writers: int = 16


class Bench:
    def __init__(
        self,
        target: Target,
        options: Options,
        *,
        trader_token: Callable[[str], str],
        maker_token: Callable[[str], str],
        console: Console,
    ) -> None:
        self.target = target
        self.options = options
        self.trader_token = trader_token
        self.maker_token = maker_token
        self.console = console
        self.report = Report()

    async def phase(self, name: str, work: Callable[[], Awaitable[object]]) -> None:
        """Runs `work`, recording the platform's CPU and RSS meanwhile."""
        self.console.print(f"[dim]{name}...[/dim]")
        t = self.target
        if t.root_pid is None:
            await work()
            return
        usage = Usage(Scope(t.root_pid, t.names, t.include_root))
        await usage.start()
        try:
            await work()
        finally:
            window = await usage.stop()
        window.record(self.report, name)

    async def run(self) -> Report:
        t, o, report = self.target, self.options, self.report
        if t.database_url:
            report.database = await database_mode(t.database_url)
        if report.database.get("mode") != "durable":
            report.note(
                f"the database runs in {report.database.get('mode')} mode: commits are cheaper "
                "than on a production server; publish only figures taken in durable mode"
            )
        if o.idle_seconds > 0:
            await self.phase("idle", lambda: asyncio.sleep(o.idle_seconds))
        await measure_floors(
            report,
            database_url=t.database_url,
            redis_url=t.redis_url,
            risk_target=t.risk_target,
            kafka_bootstrap=t.kafka_bootstrap,
            fetch_wait_ms=o.fetch_wait_ms,
            count=o.floor_samples,
        )
        async with AsyncExitStack() as stack:
            demo = await runs.clients(
                stack, t.api, [self.trader_token(p) for p in ("TRADER-A", "TRADER-B")]
            )
            timeline = None
            if t.kafka_bootstrap:
                # the records' own timestamps count, not when they are read: a long
                # wait keeps the timeline's polling off the broker the platform shares
                timeline = await stack.enter_async_context(
                    Timeline(t.kafka_bootstrap, fetch_wait_ms=200)
                )
            deals: dict[str, list[Deal]] = {}
            if o.sequential:

                async def sequential() -> None:
                    deals["sequential"] = await runs.sequential(
                        demo[0],
                        report,
                        timeline,
                        gateway_url=t.gateway_url,
                        maker_token=self.maker_token(runs.SEQUENTIAL_MAKER),
                        rfqs=o.sequential,
                        quantity=o.quantity,
                    )

                await self.phase("sequential", sequential)
            if o.rfqs:

                async def closed() -> None:
                    deals["closed loop"] = await runs.closed_loop(
                        demo, report, rfqs=o.rfqs, concurrency=o.concurrency, quantity=o.quantity
                    )

                await self.phase(f"closed loop, {o.concurrency} in flight", closed)
            if o.rates:
                await self.open_loops(stack, deals)
            if timeline is not None:
                if not await timeline.caught_up(timeout_s=10):
                    report.note("budget: the timeline had not read every event yet")
                for run, made in deals.items():
                    marks = {d.rfq_id: d.marks for d in made if d.rfq_id}
                    for hop, values in budget(timeline, marks).items():
                        report.measure(f"budget, {run}: {hop}", values)
        await self.components()
        return report

    async def open_loops(self, stack: AsyncExitStack, deals: dict[str, list[Deal]]) -> None:
        t, o = self.target, self.options
        parties = runs.OPEN_LOOP_TRADERS
        if t.database_url is None:
            self.report.note(
                "open loop not run: the bench's traders need credit lines, and where the "
                "database runs is unknown"
            )
            return
        engine = make_engine(t.database_url, pool_size=1)
        try:
            await seed_demo_credit(engine, parties + MAKERS)
            await seed_demo_balances(engine, parties)
        finally:
            await engine.dispose()
        traders = await runs.clients(stack, t.api, [self.trader_token(p) for p in parties])
        for rate in o.rates:
            label = f"open loop, {rate:g} RFQs/s"

            async def loop(rate: float = rate, label: str = label) -> None:
                deals[label] = await runs.open_loop(
                    traders, self.report, rate=rate, seconds=o.rate_seconds, quantity=o.quantity
                )

            await self.phase(label, loop)

    async def components(self) -> None:
        t, o, report = self.target, self.options, self.report
        tokens = [self.trader_token(p) for p in ("TRADER-A", "TRADER-B")]
        if o.traders and t.kafka_bootstrap:
            from stack.bench.fanout import run_fanout_bench

            await run_fanout_bench(
                t.api, t.kafka_bootstrap, self.trader_token, report, traders=o.traders
            )
        if o.risk_pairs and t.database_url and t.risk_target:
            from stack.bench.credit import run_risk_bench

            await run_risk_bench(
                t.risk_target, t.database_url, report, pairs=o.risk_pairs, concurrency=o.concurrency
            )
        if o.quotes and t.kafka_bootstrap and t.redis_url:
            from stack.bench.quoting import run_quoting_bench

            await run_quoting_bench(t.kafka_bootstrap, t.redis_url, report, rfqs=o.quotes)
        if o.settlements:
            from stack.bench.settlement import run_settlement_bench

            await run_settlement_bench(
                t.api,
                tokens,
                report,
                deals=o.settlements,
                concurrency=o.concurrency,
                database_url=t.database_url,
            )
        if o.audit_writers and t.database_url:
            from stack.bench.audit import run_audit_bench

            await run_audit_bench(t.database_url, report, writers=o.audit_writers)
