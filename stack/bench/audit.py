"""The audit trail's bench: audited commits per second with many writers, beside
the same writers taking turns on one lock as the single-chain trail made them,
and the sequencer's integration delay while they write.

The raw floor is the same writers committing a one-row insert. It runs in a
scratch database on the platform's server, migrated for the run and
dropped after, so no bench event ever enters a real trail. A writer's commit is
one RFQ's transition as order_core audits it: its chain's head read, the event
and its queue row inserted, the commit.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from order_core.adapters.audit import AuditLog, audit_events, audit_log
from order_core.domain.audit import AuditRecord
from order_core.domain.checkpoints import CheckpointSigner
from order_core.service_layer.sequencing import Sequencer
from otc.clock import SystemClock
from otc.db import make_engine
from otc.migrate import upgrade
from stack.bench.report import Report

# what the single-chain trail's head row lock was, for the baseline
ONE_LOCK = "SELECT pg_advisory_xact_lock(20260101)"
FLOOR_TABLE = "CREATE TABLE public.bench_floor (id bigserial PRIMARY KEY, body text NOT NULL)"
FLOOR_INSERT = "INSERT INTO public.bench_floor (body) VALUES (:body)"


@asynccontextmanager
async def scratch_database(database_url: str) -> AsyncIterator[str]:
    admin = make_engine(database_url, pool_size=1)
    name = f"audit_bench_{uuid.uuid4().hex[:10]}"
    try:
        async with admin.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            url = admin.url.set(database=name).render_as_string(hide_password=False)
            await upgrade(url)
            yield url
        finally:
            async with admin.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
                await conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


def _record(rfq_id: str, n: int) -> AuditRecord:
    return AuditRecord(
        rfq_id=rfq_id,
        event_type="otc.v1.OrderStateChanged",
        occurred_at=datetime.now(UTC),
        producer="audit-bench",
        event_id=uuid.uuid4().hex,
        correlation_id=rfq_id,
        causation_id="",
        party="BENCH",
        payload={"rfq_id": rfq_id, "state": "QUOTED", "version": str(n)},
    )


async def audited_commits(
    engine: AsyncEngine, *, writers: int, seconds: float, one_lock: bool = False, raw: bool = False
) -> int:
    """Commits done by `writers` concurrent writers, each on RFQs of its own; `raw`
    commits a one-row insert instead, the floor of any committed write."""
    deadline = time.perf_counter() + seconds

    async def writer() -> int:
        done = 0
        rfq_id = uuid.uuid4().hex
        while time.perf_counter() < deadline:
            async with engine.begin() as conn:
                if raw:
                    await conn.execute(text(FLOOR_INSERT), {"body": rfq_id})
                else:
                    if one_lock:
                        await conn.execute(text(ONE_LOCK))
                    await AuditLog(conn).append([_record(rfq_id, done)])
            done += 1
        return done

    return sum(await asyncio.gather(*(writer() for _ in range(writers))))


async def integration_delays(engine: AsyncEngine) -> list[float]:
    query = select(
        func.extract("epoch", audit_log.c.integrated_at - audit_events.c.recorded_at) * 1000
    ).join(audit_events, audit_events.c.id == audit_log.c.event)
    async with engine.connect() as conn:
        return [float(v) for v in (await conn.execute(query)).scalars()]


async def run_audit_bench(
    database_url: str, report: Report, *, writers: int = 16, seconds: float = 3.0
) -> None:
    async with scratch_database(database_url) as url:
        engine = make_engine(url, pool_size=writers + 2)
        stopping = asyncio.Event()
        sequencer = Sequencer(
            engine,
            CheckpointSigner.generate(),
            SystemClock(),
            every=1000,
            interval=timedelta(seconds=1),
        )
        sequencing = asyncio.create_task(sequencer.run(stopping, timedelta(milliseconds=50)))
        try:
            async with engine.begin() as conn:
                await conn.execute(text(FLOOR_TABLE))
            floor = await audited_commits(engine, writers=writers, seconds=seconds, raw=True)
            parallel = await audited_commits(engine, writers=writers, seconds=seconds)
            locked = await audited_commits(engine, writers=writers, seconds=seconds, one_lock=True)
            while (await sequencer.round()).integrated:
                pass
            delays = await integration_delays(engine)
        finally:
            stopping.set()
            await sequencing
            await engine.dispose()
    report.rate(f"audited commits, {writers} writers on chains of their own", parallel / seconds)
    report.rate(f"audited commits, {writers} writers taking turns on one lock", locked / seconds)
    report.rate(f"raw one-row commits, {writers} writers", floor / seconds)
    report.measure("audit: committed -> integrated by the sequencer", delays)
