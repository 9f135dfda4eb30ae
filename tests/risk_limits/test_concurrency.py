"""Credit is never over-used: 200 concurrent Freezes, from several channels to two
replicas, at a pair whose one line fits exactly K of them.

One run makes the first line in lock order the one that binds (a gross line), the
other the last (a bilateral line), so that a refusal must undo the three lines it
froze before. After every run, no line anywhere holds more than its limit, and
every line's used and frozen credit is exactly what its reservations hold.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from otc.contracts import risk_limits_pb2 as pb
from otc.contracts import risk_limits_pb2_grpc as pb_grpc
from stack.infra.processes import free_port
from stack.infra.provider import Endpoints
from tests.risk_limits.conftest import (
    Running,
    Stub,
    amounts,
    assert_books_balance,
    both_sides,
    build_service,
    credit_line,
    exposure,
    freeze_request,
)

CALLS = 200
K = 37
AMOUNT = Decimal("1000.01")
CHANNELS_PER_REPLICA = 3
AMPLE = "1000000000"


@pytest.fixture(scope="module")
async def stubs(endpoints: Endpoints, risk: Running) -> AsyncIterator[list[Stub]]:
    port = free_port()
    replica = build_service(endpoints, port)
    await replica.start()
    targets = [risk.target, f"127.0.0.1:{port}"]
    channels = [
        grpc.aio.insecure_channel(target) for target in targets for _ in range(CHANNELS_PER_REPLICA)
    ]
    try:
        yield [pb_grpc.RiskLimitsStub(channel) for channel in channels]
    finally:
        for channel in channels:
            await channel.close()
        await replica.stop()
        await replica.close()


# (party, counterparty) of the binding line, for a maker "A-..." and a trader "Z-...":
# lock order is (A), (A with Z), (Z), (Z with A).
BINDING = {
    "first: the maker's gross line": ("A", ""),
    "last: the trader's bilateral line": ("Z", "A"),
}


@pytest.mark.parametrize("binding", list(BINDING), ids=list(BINDING))
async def test_exactly_k_of_200_concurrent_freezes_fit_a_line(
    stubs: list[Stub], engine: AsyncEngine, binding: str
) -> None:
    run = uuid.uuid4().hex[:8]
    parties = {"A": f"A-{run}", "Z": f"Z-{run}"}
    maker, trader = parties["A"], parties["Z"]
    party, counterparty = parties[BINDING[binding][0]], parties.get(BINDING[binding][1], "")
    for p, c in ((maker, ""), (trader, ""), (maker, trader), (trader, maker)):
        await credit_line(stubs[0], p, AMPLE, counterparty=c)
    await credit_line(stubs[0], party, str(AMOUNT * K), counterparty=counterparty)

    # A deadline well past the run: on a loaded machine 200 freezes can outlast the
    # default TTL, and a sweeper expiring the first winners would make room for more.
    deadline = datetime.now(UTC) + timedelta(minutes=10)
    requests = [
        freeze_request(str(uuid.uuid4()), both_sides(trader, maker, str(AMOUNT)), deadline=deadline)
        for _ in range(CALLS)
    ]
    answers = await asyncio.gather(
        *(stubs[i % len(stubs)].Freeze(r) for i, r in enumerate(requests)),
        return_exceptions=True,
    )

    won = [a for a in answers if isinstance(a, pb.FreezeResponse)]
    lost = [a for a in answers if isinstance(a, grpc.aio.AioRpcError)]
    assert len(won) == K
    assert len(lost) == CALLS - K
    binding_line = f"{party} with {counterparty}" if counterparty else party
    assert {(e.code(), e.details()) for e in lost} == {
        (
            grpc.StatusCode.FAILED_PRECONDITION,
            f"insufficient credit for {binding_line}: asked {AMOUNT} USD, available 0.00 USD",
        )
    }
    assert amounts(await exposure(stubs[0], party, counterparty)) == (0, AMOUNT * K, 0)
    for p, c in ((maker, ""), (trader, ""), (maker, trader), (trader, maker)):
        assert Decimal((await exposure(stubs[0], p, c)).frozen) == AMOUNT * K
    async with engine.connect() as conn:
        await assert_books_balance(conn)
