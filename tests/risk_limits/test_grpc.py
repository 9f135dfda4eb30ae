"""The credit service over a real gRPC channel, on the session's real Postgres.

The database is shared by the whole session, so every test names its own parties.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TypeAlias

import grpc
import pytest
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from otc.contracts import risk_limits_pb2 as pb
from otc.contracts import risk_limits_pb2_grpc as pb_grpc
from otc.infra.platform import Endpoints
from otc.infra.processes import free_port
from risk_limits.bootstrap import build
from tests.risk_limits.conftest import Running, risk_settings

# The async stub type exists only in the generated stubs, not at run time.
Stub: TypeAlias = "pb_grpc.RiskLimitsAsyncStub"


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def credit_line(stub: Stub, party: str, limit: str, currency: str = "USD") -> pb.Exposure:
    request = pb.SetCreditLineRequest(party=party, currency=currency, limit=limit)
    return await stub.SetCreditLine(request)


async def exposure(stub: Stub, party: str) -> pb.Exposure:
    return await stub.GetExposure(pb.GetExposureRequest(party=party))


def freeze_request(
    reservation_id: str,
    legs: list[tuple[str, str, str]],
    *,
    rfq_id: str = "rfq-1",
    currency: str = "USD",
    deadline: datetime | None = None,
) -> pb.FreezeRequest:
    request = pb.FreezeRequest(
        reservation_id=reservation_id,
        rfq_id=rfq_id,
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
    """A trader and a maker, each with a fresh USD line of `limit`."""
    trader, maker = name("TRADER"), name("MM")
    await credit_line(stub, trader, limit)
    await credit_line(stub, maker, limit)
    return trader, maker


async def refused(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value


def amounts(line: pb.Exposure) -> tuple[Decimal, Decimal, Decimal]:
    return Decimal(line.used), Decimal(line.frozen), Decimal(line.available)


async def test_freeze_then_commit_moves_credit_from_frozen_to_used(stub: Stub) -> None:
    trader, maker = await pair(stub)
    frozen = await stub.Freeze(freeze_request("res-" + trader, both_sides(trader, maker, "250")))
    assert (frozen.reservation_id, frozen.status) == ("res-" + trader, "FROZEN")
    assert amounts(await exposure(stub, trader)) == (0, 250, 999750)

    committed = await stub.Commit(pb.CommitRequest(reservation_id="res-" + trader))
    assert committed.status == "COMMITTED"
    for party in (trader, maker):
        assert amounts(await exposure(stub, party)) == (250, 0, 999750)

    again = await stub.Commit(pb.CommitRequest(reservation_id="res-" + trader))
    assert again.status == "COMMITTED"
    assert amounts(await exposure(stub, trader)) == (250, 0, 999750)

    error = await refused(stub.Release(pb.ReleaseRequest(reservation_id="res-" + trader)))
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert error.details() == f"reservation res-{trader} is COMMITTED; cannot release"


async def test_freeze_then_release_gives_the_credit_back(stub: Stub) -> None:
    trader, maker = await pair(stub)
    await stub.Freeze(freeze_request("res-" + trader, both_sides(trader, maker, "400.5")))
    assert amounts(await exposure(stub, maker)) == (0, Decimal("400.5"), Decimal("999599.5"))

    released = await stub.Release(pb.ReleaseRequest(reservation_id="res-" + trader, reason="lr"))
    assert released.status == "RELEASED"
    for party in (trader, maker):
        assert amounts(await exposure(stub, party)) == (0, 0, 1000000)
    again = await stub.Release(pb.ReleaseRequest(reservation_id="res-" + trader))
    assert again.status == "RELEASED"
    assert amounts(await exposure(stub, trader)) == (0, 0, 1000000)


async def test_the_same_freeze_twice_freezes_once(stub: Stub) -> None:
    trader, maker = await pair(stub)
    first = await stub.Freeze(freeze_request("res-" + trader, both_sides(trader, maker, "100")))
    respelled = freeze_request("res-" + trader, both_sides(maker, trader, "100.00"))
    second = await stub.Freeze(respelled)
    assert first.status == second.status == "FROZEN"
    assert amounts(await exposure(stub, trader)) == (0, 100, 999900)

    await stub.Commit(pb.CommitRequest(reservation_id="res-" + trader))
    late_retry = await stub.Freeze(respelled)
    assert late_retry.status == "COMMITTED"
    assert amounts(await exposure(stub, trader)) == (100, 0, 999900)


async def test_a_reused_reservation_id_with_another_request_already_exists(stub: Stub) -> None:
    trader, maker = await pair(stub)
    await stub.Freeze(freeze_request("res-" + trader, both_sides(trader, maker, "100")))
    error = await refused(
        stub.Freeze(freeze_request("res-" + trader, both_sides(trader, maker, "101")))
    )
    assert error.code() is grpc.StatusCode.ALREADY_EXISTS
    assert "res-" + trader in (error.details() or "")
    assert amounts(await exposure(stub, trader)) == (0, 100, 999900)


async def test_insufficient_credit_names_party_asked_and_available(stub: Stub) -> None:
    trader, maker = await pair(stub)
    await credit_line(stub, trader, "1000")
    await stub.Freeze(freeze_request("warm-" + trader, both_sides(trader, maker, "300")))

    request = freeze_request("res-" + trader, both_sides(trader, maker, "750.25"))
    error = await refused(stub.Freeze(request))
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert error.details() == (
        f"insufficient credit for {trader}: asked 750.25 USD, available 700 USD"
    )
    # All or nothing: the maker's leg, which had room, froze nothing either.
    assert amounts(await exposure(stub, maker)) == (0, 300, 999700)

    # The refusal is recorded: the same request gets the same answer even once
    # credit is available again.
    await stub.Release(pb.ReleaseRequest(reservation_id="warm-" + trader))
    retry = await refused(stub.Freeze(request))
    assert (retry.code(), retry.details()) == (error.code(), error.details())
    assert amounts(await exposure(stub, trader)) == (0, 0, 1000)
    assert (await stub.Release(pb.ReleaseRequest(reservation_id="res-" + trader))).status == (
        "REJECTED"
    )


async def test_a_party_without_a_credit_line_is_refused(stub: Stub) -> None:
    trader, _ = await pair(stub)
    ghost = name("GHOST")
    error = await refused(
        stub.Freeze(freeze_request("res-" + trader, both_sides(trader, ghost, "1")))
    )
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert error.details() == f"no credit line for {ghost}"
    assert amounts(await exposure(stub, trader)) == (0, 0, 1000000)


@pytest.mark.parametrize("amount", ["abc", "-1", "0", "NaN", "Infinity", "", "1e-30"])
async def test_malformed_amounts_are_invalid_arguments(stub: Stub, amount: str) -> None:
    trader, maker = await pair(stub)
    reservation_id = "res-" + trader
    error = await refused(
        stub.Freeze(freeze_request(reservation_id, both_sides(trader, maker, amount)))
    )
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "amount" in (error.details() or "")
    # Nothing was recorded: the id is still free for a well-formed request.
    ok = await stub.Freeze(freeze_request(reservation_id, both_sides(trader, maker, "1")))
    assert ok.status == "FROZEN"


async def test_malformed_requests_are_invalid_arguments(stub: Stub) -> None:
    trader, maker = await pair(stub)
    eur_leg = freeze_request("eur-" + trader, both_sides(trader, maker, "1"), currency="EUR")
    cases = [
        (freeze_request("", both_sides(trader, maker, "1")), "reservation_id"),
        (freeze_request("r-" + trader, both_sides(trader, maker, "1"), rfq_id=""), "rfq_id"),
        (freeze_request("r-" + trader, []), "at least one leg"),
        (freeze_request("r-" + trader, [(trader, trader, "1")]), "counterparty"),
        (eur_leg, "is in USD, not EUR"),
    ]
    for request, expected in cases:
        error = await refused(stub.Freeze(request))
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT, expected
        assert expected in (error.details() or "")
    for bad_limit in ("-5", "lots"):
        error = await refused(credit_line(stub, trader, bad_limit))
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    error = await refused(stub.Commit(pb.CommitRequest(reservation_id="")))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert amounts(await exposure(stub, trader)) == (0, 0, 1000000)


async def test_release_before_freeze_leaves_a_tombstone(stub: Stub) -> None:
    trader, maker = await pair(stub)
    released = await stub.Release(
        pb.ReleaseRequest(reservation_id="res-" + trader, reason="last look timeout")
    )
    assert released.status == "RELEASED"

    error = await refused(
        stub.Freeze(freeze_request("res-" + trader, both_sides(trader, maker, "10")))
    )
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "released before it was frozen" in (error.details() or "")
    for party in (trader, maker):
        assert amounts(await exposure(stub, party)) == (0, 0, 1000000)


async def test_commit_after_release_is_refused(stub: Stub) -> None:
    trader, maker = await pair(stub)
    await stub.Freeze(freeze_request("res-" + trader, both_sides(trader, maker, "10")))
    await stub.Release(pb.ReleaseRequest(reservation_id="res-" + trader))
    error = await refused(stub.Commit(pb.CommitRequest(reservation_id="res-" + trader)))
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert error.details() == f"reservation res-{trader} is RELEASED; cannot commit"
    assert amounts(await exposure(stub, trader)) == (0, 0, 1000000)


async def test_unknown_reservations_and_parties_are_not_found(stub: Stub) -> None:
    error = await refused(stub.Commit(pb.CommitRequest(reservation_id=name("nope"))))
    assert error.code() is grpc.StatusCode.NOT_FOUND
    error = await refused(exposure(stub, name("NOBODY")))
    assert error.code() is grpc.StatusCode.NOT_FOUND


async def test_a_line_carrying_credit_keeps_its_currency(stub: Stub) -> None:
    trader, maker = await pair(stub)
    assert (await credit_line(stub, trader, "5", "EUR")).currency == "EUR"
    await credit_line(stub, trader, "1000000", "USD")
    await stub.Freeze(freeze_request("res-" + trader, both_sides(trader, maker, "10")))
    error = await refused(credit_line(stub, trader, "1000000", "EUR"))
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    resized = await credit_line(stub, trader, "20", "USD")
    assert (resized.limit, resized.frozen, resized.available) == ("20", "10", "10")


async def test_concurrent_freezes_never_overuse_a_line(stub: Stub) -> None:
    # Counterparties sort before the contested party, so their legs are frozen first
    # and a refusal must also undo them.
    contested = "Z-" + name("TRADER")
    makers = [f"A-{contested}-{i:02d}" for i in range(50)]
    await credit_line(stub, contested, "10000000")
    await asyncio.gather(*(credit_line(stub, m, "1000000000000") for m in makers))

    answers = await asyncio.gather(
        *(
            stub.Freeze(freeze_request(f"res-{m}", both_sides(contested, m, "1000000")))
            for m in makers
        ),
        return_exceptions=True,
    )

    won = [m for m, a in zip(makers, answers, strict=True) if isinstance(a, pb.FreezeResponse)]
    lost = [a for a in answers if isinstance(a, grpc.aio.AioRpcError)]
    assert len(won) == 10
    assert len(lost) == 40
    assert {e.code() for e in lost} == {grpc.StatusCode.FAILED_PRECONDITION}
    assert amounts(await exposure(stub, contested)) == (0, 10000000, 0)
    for maker in makers:
        expected = 1000000 if maker in won else 0
        assert Decimal((await exposure(stub, maker)).frozen) == expected


async def test_the_sweeper_expires_overdue_reservations(stub: Stub, engine: AsyncEngine) -> None:
    trader, maker = await pair(stub)
    past = datetime.now(UTC) - timedelta(seconds=1)
    request = freeze_request("res-" + trader, both_sides(trader, maker, "10"), deadline=past)
    assert (await stub.Freeze(request)).status == "FROZEN"

    deadline = time.monotonic() + 10
    while await reservation_status(engine, "res-" + trader) != "EXPIRED":
        assert time.monotonic() < deadline, "the sweeper never expired the reservation"
        await asyncio.sleep(0.1)

    for party in (trader, maker):
        assert amounts(await exposure(stub, party)) == (0, 0, 1000000)
    error = await refused(stub.Commit(pb.CommitRequest(reservation_id="res-" + trader)))
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert error.details() == f"reservation res-{trader} is EXPIRED; cannot commit"
    released = await stub.Release(pb.ReleaseRequest(reservation_id="res-" + trader))
    assert released.status == "EXPIRED"


async def reservation_status(engine: AsyncEngine, reservation_id: str) -> str | None:
    async with engine.connect() as conn:
        result = await conn.execute(
            text("SELECT status FROM risk.reservations WHERE reservation_id = :id"),
            {"id": reservation_id},
        )
        return result.scalar_one_or_none()


async def test_health_answers_serving(channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "risk_limits.v1.RiskLimits"):
        answer = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_the_service(channel: grpc.aio.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    call = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    )
    answer = await call.read()
    names = {s.name for s in answer.list_services_response.service}
    assert {"risk_limits.v1.RiskLimits", "grpc.health.v1.Health"} <= names
    call.cancel()


async def test_stopping_reports_not_serving_before_the_port_closes(endpoints: Endpoints) -> None:
    port = free_port()
    service = build(risk_settings(endpoints, port))
    await service.start()
    sweeper = asyncio.create_task(service.run())
    assert service.ready()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as chan:
        watch = health_pb2_grpc.HealthStub(chan).Watch(health_pb2.HealthCheckRequest(service=""))
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
        stopping = asyncio.create_task(service.stop())
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
        assert not service.ready()
        watch.cancel()
        await stopping
    await asyncio.wait_for(sweeper, timeout=5)
    await service.close()


def freezes(outcome: str) -> float:
    return REGISTRY.get_sample_value("otc_risk_freezes_total", {"outcome": outcome}) or 0.0


async def test_freeze_outcomes_are_counted_and_logged_with_the_rfq(stub: Stub) -> None:
    trader, maker = await pair(stub, limit="100")
    rfq_id = name("rfq")
    before = {o: freezes(o) for o in ("frozen", "replayed", "rejected", "invalid")}
    ok = freeze_request("ok-" + trader, both_sides(trader, maker, "60"), rfq_id=rfq_id)
    too_much = freeze_request("no-" + trader, both_sides(trader, maker, "60"), rfq_id=rfq_id)
    with structlog.testing.capture_logs(
        processors=[structlog.contextvars.merge_contextvars]
    ) as logs:
        await stub.Freeze(ok)
        await stub.Freeze(ok)
        await refused(stub.Freeze(too_much))
        await refused(stub.Freeze(freeze_request("bad-" + trader, [(trader, maker, "x")])))
    after = {o: freezes(o) for o in before}
    assert {o: after[o] - before[o] for o in before} == {
        "frozen": 1,
        "replayed": 1,
        "rejected": 1,
        "invalid": 1,
    }
    ours = [e for e in logs if e.get("rfq_id") == rfq_id]
    assert [e["event"] for e in ours] == ["credit frozen", "freeze replayed", "freeze refused"]
    assert all(e["reservation_id"] in {"ok-" + trader, "no-" + trader} for e in ours)


async def test_a_second_replica_shares_the_same_credit(endpoints: Endpoints, risk: Running) -> None:
    port = free_port()
    replica = build(risk_settings(endpoints, port))
    await replica.start()
    try:
        async with (
            grpc.aio.insecure_channel(risk.target) as one,
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as two,
        ):
            first, second = pb_grpc.RiskLimitsStub(one), pb_grpc.RiskLimitsStub(two)
            trader, maker = await pair(first, limit="100")
            a = freeze_request("a-" + trader, both_sides(trader, maker, "70"))
            b = freeze_request("b-" + trader, both_sides(trader, maker, "70"))
            answers = await asyncio.gather(
                first.Freeze(a), second.Freeze(b), return_exceptions=True
            )
            assert sum(isinstance(x, pb.FreezeResponse) for x in answers) == 1
            assert amounts(await exposure(second, trader)) == (0, 70, 30)
    finally:
        await replica.stop()
        await replica.close()
