"""The credit service's figures for `otc bench`: how many Freeze + Commit pairs per
second it sustains and their latency, beside what its floor costs in the same run,
a bare gRPC round trip (a health check) and a bare PostgreSQL transaction.

It runs twice, with parties made for the run and lines large enough never to
refuse: first each worker trades between two parties of its own, so no credit line
is shared and the figure is the service's own path; then every worker trades
between the same two parties, as every demo trade does, so the figure is that of a
hot line, where each freeze waits for the one before it to let go of the rows.
Nothing else on the platform is touched; the exposure is freed afterwards (not
measured). It measures; it asserts nothing.
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

from otc.contracts import risk_limits_pb2 as pb
from otc.contracts import risk_limits_pb2_grpc as pb_grpc
from otc.db import asyncpg_dsn
from otc.ids import new_id
from otc.money import fmt
from stack.bench.report import Report

AMOUNT = Decimal("1")
CALL_TIMEOUT_S = 10.0
CHANNELS = 4  # one HTTP/2 connection would serialise what several clients send


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
    target: str, database_url: str, report: Report, *, pairs: int, concurrency: int
) -> None:
    run = uuid.uuid4().hex[:8]
    # one pair of parties per worker, then every worker on one hot pair
    parties = [(f"BENCH-{run}-{w}-A", f"BENCH-{run}-{w}-B") for w in range(concurrency)]
    hot = (f"BENCH-{run}-HOT-A", f"BENCH-{run}-HOT-B")
    ids = [str(uuid.uuid4()) for _ in range(2 * pairs + concurrency)]  # and the warm-up's
    channels = [grpc.aio.insecure_channel(target) for _ in range(CHANNELS)]
    stubs = [pb_grpc.RiskLimitsStub(channel) for channel in channels]
    healths = [health_pb2_grpc.HealthStub(channel) for channel in channels]
    pool = await asyncpg.create_pool(
        asyncpg_dsn(database_url), min_size=concurrency, max_size=concurrency
    )
    try:
        for a, b in parties:
            await _open_lines(stubs[0], a, b, fmt(AMOUNT * (pairs + 1)))
        await _open_lines(stubs[0], *hot, fmt(AMOUNT * (pairs + 1)))

        async def freeze_commit(reservation_id: str, a: str, b: str, stub_index: int) -> None:
            stub = stubs[stub_index % CHANNELS]
            await stub.Freeze(_freeze_request(reservation_id, a, b), timeout=CALL_TIMEOUT_S)
            await stub.Commit(
                pb.CommitRequest(reservation_id=reservation_id), timeout=CALL_TIMEOUT_S
            )

        async def own_lines(i: int, worker: int) -> None:
            await freeze_commit(ids[i], *parties[worker], i)

        async def hot_pair(i: int, _worker: int) -> None:
            await freeze_commit(ids[pairs + i], *hot, i)

        async def health_check(i: int, _worker: int) -> None:
            await healths[i % CHANNELS].Check(
                health_pb2.HealthCheckRequest(service=""), timeout=CALL_TIMEOUT_S
            )

        async def transaction(_i: int, _worker: int) -> None:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT 1")

        # Warm-up: connections, prepared statements and code paths, not measured.
        await _timed(
            concurrency, concurrency, lambda i, w: freeze_commit(ids[2 * pairs + i], *parties[w], i)
        )
        await _timed(concurrency, concurrency, health_check)
        await _timed(concurrency, concurrency, transaction)
        own_ms, own_s = await _timed(pairs, concurrency, own_lines)
        hot_ms, hot_s = await _timed(pairs, concurrency, hot_pair)
        health_ms, health_s = await _timed(pairs, concurrency, health_check)
        tx_ms, tx_s = await _timed(pairs, concurrency, transaction)
        await _settle_all(stubs, ids, concurrency)
    finally:
        await pool.close()
        for channel in channels:
            await channel.close()
    for name, latencies, seconds in (
        (f"credit Freeze + Commit, {concurrency} in flight, a pair of lines each", own_ms, own_s),
        (f"credit Freeze + Commit, {concurrency} in flight, one hot pair", hot_ms, hot_s),
    ):
        report.measure(name, latencies)
        report.rate(name, pairs / seconds)
    report.floor(f"gRPC round trip (health check), {concurrency} in flight", health_ms)
    report.rate(f"gRPC round trips, {concurrency} in flight", pairs / health_s)
    report.floor(f"PostgreSQL BEGIN; SELECT 1; COMMIT, {concurrency} in flight", tx_ms)
    report.rate(f"PostgreSQL transactions, {concurrency} in flight", pairs / tx_s)


async def _settle_all(
    stubs: list[pb_grpc.RiskLimitsStub], ids: list[str], concurrency: int
) -> None:
    async def settle(i: int, _worker: int) -> None:
        await stubs[i % CHANNELS].SettleReservation(
            pb.SettleReservationRequest(reservation_id=ids[i], reason="bench run over"),
            timeout=CALL_TIMEOUT_S,
        )

    await _timed(len(ids), concurrency, settle)
