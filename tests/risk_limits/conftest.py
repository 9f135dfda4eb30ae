"""The credit service run in-process on a free port against the session's Postgres
and Kafka, a real grpc.aio channel to it, and the helpers its tests share.

An in-process service reads every partition of `settlement.events` without joining
a consumer group (which takes seconds), and so never takes partitions away from the
platform's own risk-limits process either. It lives for one module: the stateful
test must run while no Kafka client in this process is fetching (see there).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TypeAlias

import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from otc.clock import Clock
from otc.contracts import risk_limits_pb2 as pb
from otc.contracts import risk_limits_pb2_grpc as pb_grpc
from otc.migrate import upgrade
from otc.service import Service
from otc.settings import Settings
from risk_limits.bootstrap import build
from stack.infra.processes import free_port
from stack.infra.provider import Endpoints

# The async stub type exists only in the generated stubs, not at run time.
Stub: TypeAlias = "pb_grpc.RiskLimitsAsyncStub"


@dataclass(frozen=True)
class Running:
    service: Service
    target: str


def risk_settings(endpoints: Endpoints, port: int, database_url: str | None = None) -> Settings:
    return Settings(
        env="test",
        database_url=database_url or endpoints.database_url,
        kafka_bootstrap=endpoints.kafka_bootstrap,
        risk_grpc_port=port,
    )


def build_service(
    endpoints: Endpoints,
    port: int,
    *,
    database_url: str | None = None,
    clock: Clock | None = None,
    group_id: str | None = None,
) -> Service:
    return build(risk_settings(endpoints, port, database_url), group_id=group_id, clock=clock)


async def wait_ready(service: Service, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not service.ready():
        assert time.monotonic() < deadline, f"{service.name} not ready after {timeout}s"
        await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
async def risk(endpoints: Endpoints) -> AsyncIterator[Running]:
    port = free_port()
    service = build_service(endpoints, port)
    await service.start()
    runner = asyncio.create_task(service.run())
    try:
        yield Running(service, f"127.0.0.1:{port}")
    finally:
        await service.stop()
        await runner
        await service.close()


@pytest.fixture(scope="module")
async def channel(risk: Running) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(risk.target) as chan:
        yield chan


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> Stub:
    return pb_grpc.RiskLimitsStub(channel)


@asynccontextmanager
async def private_database(endpoints: Endpoints, engine: AsyncEngine) -> AsyncIterator[str]:
    """A freshly migrated database of its own on the session's server, for tests
    that move a clock: that makes *every* FROZEN reservation of a database overdue."""
    database = f"risk_{uuid.uuid4().hex[:12]}"
    admin = await engine.execution_options(isolation_level="AUTOCOMMIT").connect()
    try:
        await admin.execute(text(f'CREATE DATABASE "{database}"'))
        url = make_url(endpoints.database_url).set(database=database)
        await upgrade(url.render_as_string(hide_password=False))
        yield url.render_as_string(hide_password=False)
        await admin.execute(text(f'DROP DATABASE "{database}" WITH (FORCE)'))
    finally:
        await admin.close()


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def rid(seed: str) -> str:
    """A reservation id (a UUID) that a test can name again from the same seed."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, seed))


async def credit_line(
    stub: Stub, party: str, limit: str, currency: str = "USD", counterparty: str = ""
) -> pb.Exposure:
    request = pb.SetCreditLineRequest(
        party=party, counterparty=counterparty, currency=currency, limit=limit
    )
    return await stub.SetCreditLine(request)


async def both_ways(stub: Stub, a: str, b: str, limit: str, currency: str = "USD") -> None:
    """The bilateral lines of a and b, in both directions."""
    await credit_line(stub, a, limit, currency, counterparty=b)
    await credit_line(stub, b, limit, currency, counterparty=a)


async def exposure(stub: Stub, party: str, counterparty: str = "") -> pb.Exposure:
    return await stub.GetExposure(pb.GetExposureRequest(party=party, counterparty=counterparty))


def amounts(line: pb.Exposure) -> tuple[Decimal, Decimal, Decimal]:
    """(used, frozen, available)"""
    return Decimal(line.used), Decimal(line.frozen), Decimal(line.available)


def freeze_request(
    reservation_id: str,
    legs: list[tuple[str, str, str]],
    *,
    rfq_id: str | None = None,
    currency: str = "USD",
    deadline: datetime | None = None,
) -> pb.FreezeRequest:
    request = pb.FreezeRequest(
        reservation_id=reservation_id,
        rfq_id="rfq-" + reservation_id if rfq_id is None else rfq_id,
        legs=[
            pb.CreditLeg(party=p, counterparty=c, amount=a, currency=currency) for p, c, a in legs
        ],
    )
    if deadline is not None:
        request.deadline.FromDatetime(deadline)
    return request


def both_sides(a: str, b: str, amount: str) -> list[tuple[str, str, str]]:
    return [(a, b, amount), (b, a, amount)]


async def pair(stub: Stub, limit: str = "1000000") -> tuple[str, str]:
    """A trader and a maker, each with a fresh USD gross line of `limit`, and a
    bilateral line of `limit` each way."""
    trader, maker = name("TRADER"), name("MM")
    await credit_line(stub, trader, limit)
    await credit_line(stub, maker, limit)
    await both_ways(stub, trader, maker, limit)
    return trader, maker


async def refused(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value


# Every line over its limit, or whose used and frozen credit is not exactly what its
# COMMITTED and FROZEN reservations hold; one statement, so one snapshot.
BAD_LINES = """
    WITH held AS (
        SELECT h->>'party' AS party, h->>'counterparty' AS counterparty,
               sum((h->>'amount')::numeric) FILTER (WHERE r.status = 'FROZEN') AS frozen,
               sum((h->>'amount')::numeric) FILTER (WHERE r.status = 'COMMITTED') AS used
        FROM risk.reservations r, jsonb_array_elements(r.holds) h
        GROUP BY 1, 2
    ), lines AS (
        SELECT party, '' AS counterparty, credit_limit, used, frozen FROM risk.credit_lines
        UNION ALL
        SELECT party, counterparty, credit_limit, used, frozen FROM risk.bilateral_lines
    )
    SELECT l.party, l.counterparty, l.credit_limit, l.used, l.frozen,
           coalesce(h.used, 0) AS held_used, coalesce(h.frozen, 0) AS held_frozen
    FROM lines l LEFT JOIN held h USING (party, counterparty)
    WHERE l.used + l.frozen > l.credit_limit
       OR l.used <> coalesce(h.used, 0)
       OR l.frozen <> coalesce(h.frozen, 0)
"""


async def assert_books_balance(conn: AsyncConnection) -> None:
    """No line holds more than its limit, and every line's used and frozen credit
    is exactly what its COMMITTED and FROZEN reservations hold."""
    bad = (await conn.execute(text(BAD_LINES))).all()
    assert bad == [], f"lines over their limit or at odds with their reservations: {bad}"
