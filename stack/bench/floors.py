"""The raw floors `otc bench` prints beside the platform's figures: what one bare
hop of each kind costs on this machine in the same run, one at a time. A figure of
the platform can be read against the hops it is built from.
"""

from __future__ import annotations

import time
import uuid

import asyncpg
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from redis.asyncio import Redis

from otc.db import asyncpg_dsn
from stack.bench.report import Report
from stack.bench.timeline import kafka_floor

CALL_TIMEOUT_S = 10.0


async def postgres_transaction(database_url: str, count: int) -> list[float]:
    """One versioned update in its own transaction, as an order transition is."""
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


async def redis_round_trip(redis_url: str, count: int) -> list[float]:
    redis = Redis.from_url(redis_url)
    key = f"bench:floor:{uuid.uuid4().hex}"
    try:
        timings = []
        for _ in range(count):
            started = time.perf_counter()
            await redis.set(key, "x", px=1000)
            timings.append((time.perf_counter() - started) * 1000)
        return timings
    finally:
        await redis.aclose()


async def grpc_round_trip(target: str, count: int) -> list[float]:
    """A health check of the credit service: gRPC and HTTP/2 with no work behind."""
    async with grpc.aio.insecure_channel(target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service="")
        await health.Check(request, timeout=CALL_TIMEOUT_S)  # connects
        timings = []
        for _ in range(count):
            started = time.perf_counter()
            await health.Check(request, timeout=CALL_TIMEOUT_S)
            timings.append((time.perf_counter() - started) * 1000)
        return timings


async def measure_floors(
    report: Report,
    *,
    database_url: str | None,
    redis_url: str | None,
    risk_target: str | None,
    kafka_bootstrap: str | None,
    fetch_wait_ms: int,
    count: int = 200,
) -> None:
    if database_url:
        report.floor(
            "PostgreSQL transaction (one versioned update)",
            await postgres_transaction(database_url, count),
        )
    if redis_url:
        report.floor("Redis round trip (SET PX)", await redis_round_trip(redis_url, count))
    if risk_target:
        report.floor("gRPC round trip (health check)", await grpc_round_trip(risk_target, count))
    if kafka_bootstrap:
        report.floor(
            f"Kafka produce -> consume ({fetch_wait_ms} ms fetch wait, as the platform)",
            await kafka_floor(kafka_bootstrap, fetch_wait_ms, count),
        )
    unknown = [
        name
        for name, where in (
            ("PostgreSQL", database_url),
            ("Redis", redis_url),
            ("gRPC", risk_target),
            ("Kafka", kafka_bootstrap),
        )
        if not where
    ]
    if unknown:
        report.note(f"floors not measured, where they run is unknown: {', '.join(unknown)}")
