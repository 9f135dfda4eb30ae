"""The credit service over a real gRPC channel, on the session's real Postgres.

The database is shared by the whole session, so every test names its own parties.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

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
from stack.infra.processes import free_port
from stack.infra.provider import Endpoints
from tests.risk_limits.conftest import (
    Running,
    Stub,
    amounts,
    both_sides,
    both_ways,
    build_service,
    credit_line,
    exposure,
    freeze_request,
    name,
    pair,
    refused,
    rid,
    wait_ready,
)


async def test_freeze_then_commit_moves_credit_from_frozen_to_used(stub: Stub) -> None:
    trader, maker = await pair(stub)
    res = rid("res-" + trader)
    frozen = await stub.Freeze(freeze_request(res, both_sides(trader, maker, "250")))
    assert (frozen.reservation_id, frozen.status) == (res, "FROZEN")
    assert amounts(await exposure(stub, trader)) == (0, 250, 999750)
    assert amounts(await exposure(stub, trader, maker)) == (0, 250, 999750)

    committed = await stub.Commit(pb.CommitRequest(reservation_id=res))
    assert committed.status == "COMMITTED"
    for party, counterparty in ((trader, ""), (maker, ""), (trader, maker), (maker, trader)):
        assert amounts(await exposure(stub, party, counterparty)) == (250, 0, 999750)

    again = await stub.Commit(pb.CommitRequest(reservation_id=res))
    assert again.status == "COMMITTED"
    assert amounts(await exposure(stub, trader)) == (250, 0, 999750)

    error = await refused(stub.Release(pb.ReleaseRequest(reservation_id=res)))
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert error.details() == f"reservation {res} is COMMITTED; cannot release"


async def test_freeze_then_release_gives_the_credit_back(stub: Stub) -> None:
    trader, maker = await pair(stub)
    res = rid("res-" + trader)
    await stub.Freeze(freeze_request(res, both_sides(trader, maker, "400.5")))
    assert amounts(await exposure(stub, maker)) == (0, Decimal("400.5"), Decimal("999599.5"))

    released = await stub.Release(pb.ReleaseRequest(reservation_id=res, reason="lr"))
    assert released.status == "RELEASED"
    for party, counterparty in ((trader, ""), (maker, ""), (trader, maker), (maker, trader)):
        assert amounts(await exposure(stub, party, counterparty)) == (0, 0, 1000000)
    again = await stub.Release(pb.ReleaseRequest(reservation_id=res))
    assert again.status == "RELEASED"
    assert amounts(await exposure(stub, trader)) == (0, 0, 1000000)


async def test_the_same_freeze_twice_freezes_once(stub: Stub) -> None:
    trader, maker = await pair(stub)
    res = rid("res-" + trader)
    first = await stub.Freeze(freeze_request(res, both_sides(trader, maker, "100")))
    respelled = freeze_request(res, both_sides(maker, trader, "100.00"))
    second = await stub.Freeze(respelled)
    assert first.status == second.status == "FROZEN"
    assert amounts(await exposure(stub, trader)) == (0, 100, 999900)

    await stub.Commit(pb.CommitRequest(reservation_id=res))
    late_retry = await stub.Freeze(respelled)
    assert late_retry.status == "COMMITTED"
    assert amounts(await exposure(stub, trader)) == (100, 0, 999900)


async def test_a_reused_reservation_id_with_another_request_already_exists(stub: Stub) -> None:
    trader, maker = await pair(stub)
    res = rid("res-" + trader)
    await stub.Freeze(freeze_request(res, both_sides(trader, maker, "100")))
    error = await refused(stub.Freeze(freeze_request(res, both_sides(trader, maker, "101"))))
    assert error.code() is grpc.StatusCode.ALREADY_EXISTS
    assert res in (error.details() or "")
    assert amounts(await exposure(stub, trader)) == (0, 100, 999900)


async def test_insufficient_credit_names_line_asked_and_available(stub: Stub) -> None:
    trader, maker = await pair(stub)
    await credit_line(stub, trader, "1000")
    warm = rid("warm-" + trader)
    await stub.Freeze(freeze_request(warm, both_sides(trader, maker, "300")))

    res = rid("res-" + trader)
    request = freeze_request(res, both_sides(trader, maker, "750.25"))
    error = await refused(stub.Freeze(request))
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert error.details() == (
        f"insufficient credit for {trader}: asked 750.25 USD, available 700 USD"
    )
    # All or nothing: the maker's lines, which had room, froze nothing either.
    assert amounts(await exposure(stub, maker)) == (0, 300, 999700)
    assert amounts(await exposure(stub, maker, trader)) == (0, 300, 999700)

    # The refusal is recorded: the same request gets the same answer even once
    # credit is available again.
    await stub.Release(pb.ReleaseRequest(reservation_id=warm))
    retry = await refused(stub.Freeze(request))
    assert (retry.code(), retry.details()) == (error.code(), error.details())
    assert amounts(await exposure(stub, trader)) == (0, 0, 1000)
    assert (await stub.Release(pb.ReleaseRequest(reservation_id=res))).status == "REJECTED"


async def test_a_bilateral_line_limits_a_pair_within_ample_gross_lines(stub: Stub) -> None:
    trader, maker = await pair(stub)
    await credit_line(stub, maker, "50", counterparty=trader)
    error = await refused(
        stub.Freeze(freeze_request(rid("res-" + trader), both_sides(trader, maker, "60")))
    )
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert error.details() == (
        f"insufficient credit for {maker} with {trader}: asked 60 USD, available 50 USD"
    )
    other = name("MM")
    await credit_line(stub, other, "1000000")
    await both_ways(stub, trader, other, "1000000")
    ok = await stub.Freeze(freeze_request(rid("ok-" + trader), both_sides(trader, other, "60")))
    assert ok.status == "FROZEN"


async def test_a_pair_without_a_bilateral_line_has_no_credit(stub: Stub) -> None:
    trader, _ = await pair(stub)
    stranger = name("MM")
    await credit_line(stub, stranger, "1000000")
    await credit_line(stub, trader, "1000000", counterparty=stranger)
    error = await refused(
        stub.Freeze(freeze_request(rid("res-" + trader), both_sides(trader, stranger, "1")))
    )
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert error.details() == f"no credit line for {stranger} with {trader}"
    assert amounts(await exposure(stub, trader)) == (0, 0, 1000000)


async def test_a_party_without_a_credit_line_is_unknown_and_nothing_is_kept(stub: Stub) -> None:
    trader, _ = await pair(stub)
    ghost = name("GHOST")
    res = rid("res-" + trader)
    error = await refused(stub.Freeze(freeze_request(res, both_sides(trader, ghost, "1"))))
    assert error.code() is grpc.StatusCode.NOT_FOUND
    assert error.details() == f"unknown party {ghost}: it has no credit line"
    assert amounts(await exposure(stub, trader)) == (0, 0, 1000000)
    # Nothing was recorded: once the party has lines, the same id freezes.
    await credit_line(stub, ghost, "1000000")
    await both_ways(stub, trader, ghost, "1000000")
    assert (await stub.Freeze(freeze_request(res, both_sides(trader, ghost, "1")))).status == (
        "FROZEN"
    )


@pytest.mark.parametrize("amount", ["abc", "-1", "0", "-0.00", "NaN", "Infinity", "", "1e-30"])
async def test_malformed_amounts_are_invalid_arguments(stub: Stub, amount: str) -> None:
    trader, maker = await pair(stub)
    res = rid("res-" + trader)
    error = await refused(stub.Freeze(freeze_request(res, both_sides(trader, maker, amount))))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "amount" in (error.details() or "")
    # Nothing was recorded: the id is still free for a well-formed request.
    ok = await stub.Freeze(freeze_request(res, both_sides(trader, maker, "1")))
    assert ok.status == "FROZEN"


async def test_malformed_requests_are_invalid_arguments(stub: Stub) -> None:
    trader, maker = await pair(stub)
    res = rid("r-" + trader)
    cases = [
        (freeze_request("", both_sides(trader, maker, "1")), "reservation_id"),
        (freeze_request("res-1", both_sides(trader, maker, "1")), "must be a UUID"),
        (freeze_request(res.upper(), both_sides(trader, maker, "1")), "must be a UUID"),
        (freeze_request(res, both_sides(trader, maker, "1"), rfq_id=""), "rfq_id"),
        (freeze_request(res, []), "at least one leg"),
        (freeze_request(res, [(trader, trader, "1")]), "counterparty"),
        (freeze_request(res, both_sides(trader, maker, "1"), currency="XYZ"), "unsupported"),
    ]
    for request, expected in cases:
        error = await refused(stub.Freeze(request))
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT, expected
        assert expected in (error.details() or "")
    for bad_limit, expected in (
        ("-5", "negative"),
        ("lots", "not a decimal"),
        ("100.001", "more decimal places than USD allows (2)"),
    ):
        error = await refused(credit_line(stub, trader, bad_limit))
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert expected in (error.details() or "")
    error = await refused(credit_line(stub, trader, "1", counterparty=trader))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    for call in (
        stub.Commit(pb.CommitRequest(reservation_id="")),
        stub.Commit(pb.CommitRequest(reservation_id="res-1")),
        stub.Release(pb.ReleaseRequest(reservation_id="not-a-uuid")),
        stub.SettleReservation(pb.SettleReservationRequest(reservation_id="x")),
    ):
        error = await refused(call)
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "reservation_id must be a UUID" in (error.details() or "")
    assert amounts(await exposure(stub, trader)) == (0, 0, 1000000)
    assert (await exposure(stub, trader)).limit == "1000000"
    # The malformed Release left no tombstone behind.
    assert (await stub.Freeze(freeze_request(res, both_sides(trader, maker, "1")))).status == (
        "FROZEN"
    )


async def test_release_before_freeze_leaves_a_tombstone(stub: Stub) -> None:
    trader, maker = await pair(stub)
    res = rid("res-" + trader)
    released = await stub.Release(pb.ReleaseRequest(reservation_id=res, reason="last look timeout"))
    assert released.status == "RELEASED"

    error = await refused(stub.Freeze(freeze_request(res, both_sides(trader, maker, "10"))))
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "released before it was frozen" in (error.details() or "")
    for party in (trader, maker):
        assert amounts(await exposure(stub, party)) == (0, 0, 1000000)


async def test_commit_after_release_is_refused(stub: Stub) -> None:
    trader, maker = await pair(stub)
    res = rid("res-" + trader)
    await stub.Freeze(freeze_request(res, both_sides(trader, maker, "10")))
    await stub.Release(pb.ReleaseRequest(reservation_id=res))
    error = await refused(stub.Commit(pb.CommitRequest(reservation_id=res)))
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert error.details() == f"reservation {res} is RELEASED; cannot commit"
    assert amounts(await exposure(stub, trader)) == (0, 0, 1000000)


async def test_unknown_reservations_and_lines_are_not_found(stub: Stub) -> None:
    error = await refused(stub.Commit(pb.CommitRequest(reservation_id=str(uuid.uuid4()))))
    assert error.code() is grpc.StatusCode.NOT_FOUND
    nobody = name("NOBODY")
    error = await refused(exposure(stub, nobody))
    assert error.code() is grpc.StatusCode.NOT_FOUND
    assert error.details() == f"no credit line for {nobody}"
    trader, _ = await pair(stub)
    error = await refused(exposure(stub, trader, nobody))
    assert error.code() is grpc.StatusCode.NOT_FOUND
    assert error.details() == f"no credit line for {trader} with {nobody}"


async def test_a_line_carrying_credit_keeps_its_currency(stub: Stub) -> None:
    trader, maker = await pair(stub)
    assert (await credit_line(stub, trader, "5", "EUR")).currency == "EUR"
    await credit_line(stub, trader, "1000000", "USD")
    await stub.Freeze(freeze_request(rid("res-" + trader), both_sides(trader, maker, "10")))
    for counterparty in ("", maker):
        error = await refused(credit_line(stub, trader, "1000000", "EUR", counterparty))
        assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert "carries used or frozen credit" in (error.details() or "")
    resized = await credit_line(stub, trader, "20", "USD")
    assert (resized.limit, resized.frozen, resized.available) == ("20", "10", "10")


async def test_the_sweeper_expires_overdue_reservations(stub: Stub, engine: AsyncEngine) -> None:
    trader, maker = await pair(stub)
    res = rid("res-" + trader)
    past = datetime.now(UTC) - timedelta(seconds=1)
    request = freeze_request(res, both_sides(trader, maker, "10"), deadline=past)
    assert (await stub.Freeze(request)).status == "FROZEN"

    deadline = time.monotonic() + 10
    while await reservation_status(engine, res) != "EXPIRED":
        assert time.monotonic() < deadline, "the sweeper never expired the reservation"
        await asyncio.sleep(0.1)

    for party, counterparty in ((trader, ""), (maker, ""), (trader, maker), (maker, trader)):
        assert amounts(await exposure(stub, party, counterparty)) == (0, 0, 1000000)
    error = await refused(stub.Commit(pb.CommitRequest(reservation_id=res)))
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert error.details() == f"reservation {res} is EXPIRED; cannot commit"
    released = await stub.Release(pb.ReleaseRequest(reservation_id=res))
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


async def test_ready_once_consuming_and_not_serving_before_the_port_closes(
    endpoints: Endpoints,
) -> None:
    port = free_port()
    service = build_service(endpoints, port, group_id=name("risk-limits-test"))
    assert not service.ready()
    await service.start()
    runner = asyncio.create_task(service.run())
    # Serving gRPC is not enough: a replica frees settled exposure only once it
    # has partitions of settlement.events, which joining the group takes a while.
    assert not service.ready()
    await wait_ready(service)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as chan:
        watch = health_pb2_grpc.HealthStub(chan).Watch(health_pb2.HealthCheckRequest(service=""))
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
        stopping = asyncio.create_task(service.stop())
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
        assert not service.ready()
        watch.cancel()
        await stopping
    await asyncio.wait_for(runner, timeout=5)
    await service.close()


def freezes(outcome: str) -> float:
    return REGISTRY.get_sample_value("otc_risk_freezes_total", {"outcome": outcome}) or 0.0


async def test_freeze_outcomes_are_counted_and_logged_with_the_rfq(stub: Stub) -> None:
    trader, maker = await pair(stub, limit="100")
    rfq_id = name("rfq")
    ok_id, no_id = rid("ok-" + trader), rid("no-" + trader)
    before = {o: freezes(o) for o in ("frozen", "replayed", "rejected", "invalid")}
    ok = freeze_request(ok_id, both_sides(trader, maker, "60"), rfq_id=rfq_id)
    too_much = freeze_request(no_id, both_sides(trader, maker, "60"), rfq_id=rfq_id)
    with structlog.testing.capture_logs(
        processors=[structlog.contextvars.merge_contextvars]
    ) as logs:
        await stub.Freeze(ok)
        await stub.Freeze(ok)
        await refused(stub.Freeze(too_much))
        await refused(stub.Freeze(freeze_request(rid("bad-" + trader), [(trader, maker, "x")])))
    after = {o: freezes(o) for o in before}
    assert {o: after[o] - before[o] for o in before} == {
        "frozen": 1,
        "replayed": 1,
        "rejected": 1,
        "invalid": 1,
    }
    ours = [e for e in logs if e.get("rfq_id") == rfq_id]
    assert [e["event"] for e in ours] == ["credit frozen", "freeze replayed", "freeze refused"]
    assert all(e["reservation_id"] in {ok_id, no_id} for e in ours)


async def test_a_second_replica_shares_the_same_credit(endpoints: Endpoints, risk: Running) -> None:
    port = free_port()
    replica = build_service(endpoints, port)
    await replica.start()
    try:
        async with (
            grpc.aio.insecure_channel(risk.target) as one,
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as two,
        ):
            first, second = pb_grpc.RiskLimitsStub(one), pb_grpc.RiskLimitsStub(two)
            trader, maker = await pair(first, limit="100")
            a = freeze_request(rid("a-" + trader), both_sides(trader, maker, "70"))
            b = freeze_request(rid("b-" + trader), both_sides(trader, maker, "70"))
            answers = await asyncio.gather(
                first.Freeze(a), second.Freeze(b), return_exceptions=True
            )
            assert sum(isinstance(x, pb.FreezeResponse) for x in answers) == 1
            assert amounts(await exposure(second, trader)) == (0, 70, 30)
    finally:
        await replica.stop()
        await replica.close()
