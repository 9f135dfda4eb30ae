"""The credit service's figures for `otc bench`: how many Freeze + Commit pairs per
second it sustains and their latency, beside what its floor costs in the same run,
a bare gRPC round trip (a health check) and a bare PostgreSQL transaction.

Each worker trades between two parties of its own, made for the run with lines
large enough never to refuse: no credit line is shared, so the figure is the
service's own path and not a queue on one hot row, and nothing else on the
platform is touched. Their exposure is freed afterwards (not measured). It
measures; it asserts nothing.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal

import asyncpg
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rich.console import Console
from rich.table import Table

from otc.contracts import risk_limits_pb2 as pb
from otc.contracts import risk_limits_pb2_grpc as pb_grpc
from otc.db import asyncpg_dsn
from otc.ids import new_id
from otc.money import fmt
from stack.bench.platform import percentile

AMOUNT = Decimal("1")
CALL_TIMEOUT_S = 10.0
CHANNELS = 4  # one HTTP/2 connection would serialise what several clients send

console = Console()


async def _timed(
    count: int, concurrency: int, one: Callable[[int, int], Awaitable[None]]
) -> tuple[list[float], float]:
    """Latencies (ms) of `count` calls of `one(call, worker)`, `concurrency`
    workers at a time, and the wall time of them all (s)."""
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def worker(index: int) -> None:
        while not queue.empty():
            i = queue.get_nowait()
            started = time.perf_counter()
            await one(i, index)
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return latencies, time.perf_counter() - started


async def _open_lines(stub: pb_grpc.RiskLimitsStub, a: str, b: str, limit: str) -> None:
    for party, counterparty in ((a, ""), (b, ""), (a, b), (b, a)):
        await stub.SetCreditLine(
            pb.SetCreditLineRequest(
                party=party, counterparty=counterparty, currency="USD", limit=limit
            ),
            timeout=CALL_TIMEOUT_S,
        )


def _freeze_request(reservation_id: str, a: str, b: str) -> pb.FreezeRequest:
    amount = fmt(AMOUNT)
    return pb.FreezeRequest(
        reservation_id=reservation_id,
        rfq_id=new_id(),
        legs=[
            pb.CreditLeg(party=a, counterparty=b, amount=amount, currency="USD"),
            pb.CreditLeg(party=b, counterparty=a, amount=amount, currency="USD"),
        ],
    )


async def run_risk_bench(
    target: str, database_url: str, *, pairs: int, concurrency: int
) -> dict[str, float]:
    run = uuid.uuid4().hex[:8]
    parties = [(f"BENCH-{run}-{w}-A", f"BENCH-{run}-{w}-B") for w in range(concurrency)]
    ids = [str(uuid.uuid4()) for _ in range(pairs + concurrency)]  # and the warm-up's
    channels = [grpc.aio.insecure_channel(target) for _ in range(CHANNELS)]
    stubs = [pb_grpc.RiskLimitsStub(channel) for channel in channels]
    healths = [health_pb2_grpc.HealthStub(channel) for channel in channels]
    pool = await asyncpg.create_pool(
        asyncpg_dsn(database_url), min_size=concurrency, max_size=concurrency
    )
    try:
        for a, b in parties:
            await _open_lines(stubs[0], a, b, fmt(AMOUNT * (pairs + 1)))

        async def freeze_commit(i: int, worker: int) -> None:
            stub = stubs[i % CHANNELS]
            a, b = parties[worker]
            await stub.Freeze(_freeze_request(ids[i], a, b), timeout=CALL_TIMEOUT_S)
            await stub.Commit(pb.CommitRequest(reservation_id=ids[i]), timeout=CALL_TIMEOUT_S)

        async def health_check(i: int, _worker: int) -> None:
            await healths[i % CHANNELS].Check(
                health_pb2.HealthCheckRequest(service=""), timeout=CALL_TIMEOUT_S
            )

        async def transaction(_i: int, _worker: int) -> None:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT 1")

        # Warm-up: connections, prepared statements and code paths, not measured.
        await _timed(concurrency, concurrency, lambda i, w: freeze_commit(pairs + i, w))
        await _timed(concurrency, concurrency, health_check)
        await _timed(concurrency, concurrency, transaction)
        pair_ms, pair_s = await _timed(pairs, concurrency, freeze_commit)
        health_ms, health_s = await _timed(pairs, concurrency, health_check)
        tx_ms, tx_s = await _timed(pairs, concurrency, transaction)
        await _settle_all(stubs, ids, concurrency)
    finally:
        await pool.close()
        for channel in channels:
            await channel.close()
    figures: dict[str, float] = {}
    for prefix, latencies, seconds in (
        ("freeze_commit", pair_ms, pair_s),
        ("grpc_health", health_ms, health_s),
        ("pg_transaction", tx_ms, tx_s),
    ):
        figures[f"{prefix}_per_s"] = pairs / seconds
        figures[f"{prefix}_p50_ms"] = percentile(latencies, 50)
        figures[f"{prefix}_p99_ms"] = percentile(latencies, 99)
    _report(figures, pairs, concurrency)
    return figures


async def _settle_all(
    stubs: list[pb_grpc.RiskLimitsStub], ids: list[str], concurrency: int
) -> None:
    async def settle(i: int, _worker: int) -> None:
        await stubs[i % CHANNELS].SettleReservation(
            pb.SettleReservationRequest(reservation_id=ids[i], reason="bench run over"),
            timeout=CALL_TIMEOUT_S,
        )

    await _timed(len(ids), concurrency, settle)


def _report(figures: dict[str, float], pairs: int, concurrency: int) -> None:
    table = Table(title=f"credit service: {pairs} of each, {concurrency} in flight")
    for column in ("measure", "per second", "p50 ms", "p99 ms"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    for name, prefix in (
        ("Freeze + Commit", "freeze_commit"),
        ("gRPC round trip (health check)", "grpc_health"),
        ("PostgreSQL BEGIN; SELECT 1; COMMIT", "pg_transaction"),
    ):
        table.add_row(
            name,
            f"{figures[f'{prefix}_per_s']:.0f}",
            f"{figures[f'{prefix}_p50_ms']:.2f}",
            f"{figures[f'{prefix}_p99_ms']:.2f}",
        )
    console.print(table)
