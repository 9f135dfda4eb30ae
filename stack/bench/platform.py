"""`otc bench`: pushes N RFQs through a running platform as traders would, and
prints latency percentiles and throughput. It measures; it asserts nothing."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

import asyncpg
from rich.console import Console
from rich.table import Table

from otc.db import asyncpg_dsn
from otc.ids import new_id
from stack.client import TraderClient
from stack.demo import best_quote


@dataclass
class Samples:
    first_quote_ms: list[float] = field(default_factory=list)
    accept_to_pending_ms: list[float] = field(default_factory=list)
    accept_to_confirmed_ms: list[float] = field(default_factory=list)
    transitions: int = 0
    failures: dict[str, int] = field(default_factory=dict)

    def fail(self, reason: str) -> None:
        self.failures[reason] = self.failures.get(reason, 0) + 1


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


async def _one(trader: TraderClient, samples: Samples, quantity: str) -> None:
    started = time.perf_counter()
    try:
        rfq = await trader.create_rfq(
            client_rfq_id=f"bench-{new_id()}", instrument="BTC-USD", side="buy", quantity=quantity
        )
        rfq_id = rfq["rfq_id"]
        await trader.wait_quotes(rfq_id, 1)
        track = trader.tracks[rfq_id]
        assert track.first_quote_at is not None
        samples.first_quote_ms.append((track.first_quote_at - started) * 1000)
        with contextlib.suppress(TimeoutError):
            await trader.wait_quotes(rfq_id, len(rfq["counterparties"]), timeout=1.0)
        chosen = best_quote(track.quotes, "buy")
        accepted = time.perf_counter()
        mark = trader.mark(rfq_id)
        status, body = await trader.accept(rfq_id, chosen["quote_id"])
        if status not in (200, 202):
            samples.fail(f"accept {status} {body.get('error', {}).get('code', '')}")
            return
        if status == 200:  # the answer is order_core's PENDING_CONFIRMATION decision
            samples.accept_to_pending_ms.append((time.perf_counter() - accepted) * 1000)
        outcome = await trader.wait_status(rfq_id, "CONFIRMED", "QUOTED", "EXPIRED", since=mark)
        if outcome != "CONFIRMED":
            samples.fail(f"not confirmed: {outcome}")
            return
        samples.accept_to_confirmed_ms.append((track.state_at["CONFIRMED"] - accepted) * 1000)
        # versions start at 1 and every transition bumps it once
        samples.transitions += max(s["version"] for s in track.states) - 1
    except TimeoutError as exc:
        samples.fail(f"timeout: {exc}"[:80])


async def postgres_round_trips(database_url: str, count: int = 300) -> list[float]:
    """The raw cost of one versioned-update transaction, for comparison."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await conn.execute("CREATE TEMP TABLE bench_row (id int PRIMARY KEY, version int)")
        await conn.execute("INSERT INTO bench_row VALUES (1, 0)")
        timings = []
        for version in range(count):
            started = time.perf_counter()
            async with conn.transaction():
                await conn.execute(
                    "UPDATE bench_row SET version = version + 1 WHERE id = 1 AND version = $1",
                    version,
                )
            timings.append((time.perf_counter() - started) * 1000)
        return timings
    finally:
        await conn.close()


async def run_bench(
    base_url: str,
    tokens: list[str],
    *,
    rfqs: int,
    concurrency: int,
    quantity: str,
    console: Console,
    database_url: str | None = None,
) -> Samples:
    samples = Samples()
    clients = [TraderClient(base_url, token) for token in tokens]
    for client in clients:
        await client.__aenter__()
    try:
        # One warm-up round trip so connection set-up is not measured.
        await _one(clients[0], Samples(), quantity)
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(rfqs):
            queue.put_nowait(i)

        async def worker(index: int) -> None:
            client = clients[index % len(clients)]
            while not queue.empty():
                queue.get_nowait()
                await _one(client, samples, quantity)

        started = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - started
    finally:
        for client in clients:
            await client.__aexit__(None, None, None)
    raw_pg = await postgres_round_trips(database_url) if database_url else []
    _report(console, samples, rfqs, concurrency, elapsed, raw_pg)
    return samples


def _report(
    console: Console,
    samples: Samples,
    rfqs: int,
    concurrency: int,
    elapsed: float,
    raw_pg: list[float],
) -> None:
    table = Table(title=f"{rfqs} RFQs, {concurrency} in flight, 3 makers")
    for column in ("measure", "n", "p50 ms", "p90 ms", "p99 ms", "max ms"):
        table.add_column(column, justify="right" if column != "measure" else "left")
    for name, values in (
        ("RFQ -> first quote", samples.first_quote_ms),
        ("accept -> PENDING_CONFIRMATION", samples.accept_to_pending_ms),
        ("accept -> CONFIRMED", samples.accept_to_confirmed_ms),
        ("raw PostgreSQL transaction", raw_pg),
    ):
        if not values:
            continue
        table.add_row(
            name,
            str(len(values)),
            *(f"{percentile(values, p):.1f}" for p in (50, 90, 99)),
            f"{max(values) if values else float('nan'):.1f}",
        )
    console.print(table)
    done = len(samples.accept_to_confirmed_ms)
    console.print(
        f"sustained: {done / elapsed:.1f} RFQs/s confirmed end to end "
        f"({done} of {rfqs} in {elapsed:.1f} s)"
    )
    console.print(
        f"order_core: {samples.transitions / elapsed:.1f} transitions/s sustained "
        f"({samples.transitions} versioned updates)"
    )
    if not raw_pg:
        console.print("raw PostgreSQL: not measured (database URL unknown; set OTC_DATABASE_URL)")
    if samples.failures:
        console.print(f"failures: {samples.failures}")
