"""Lines in other currencies, reference rates, and the end of committed exposure once
the trade settled: over a real gRPC channel and the session's real Postgres.

Rates are shared by the whole session, so each test converts through a currency no
other test (nor the demo) uses.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

import grpc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from otc.contracts import risk_limits_pb2 as pb
from tests.risk_limits.conftest import (
    Stub,
    amounts,
    both_sides,
    credit_line,
    exposure,
    freeze_request,
    pair,
    refused,
    rid,
)

ALL_FOUR = "all four lines of the pair"


async def set_rate(stub: Stub, currency: str, rate: str) -> pb.ReferenceRate:
    return await stub.SetReferenceRate(
        pb.SetReferenceRateRequest(currency=currency, rate_in_usd=rate)
    )


async def lines_of_pair(stub: Stub, a: str, b: str) -> list[tuple[Decimal, Decimal, Decimal]]:
    return [
        amounts(await exposure(stub, party, counterparty))
        for party, counterparty in ((a, ""), (b, ""), (a, b), (b, a))
    ]


async def test_a_line_in_another_currency_holds_the_converted_notional(stub: Stub) -> None:
    trader, maker = await pair(stub)
    assert (await set_rate(stub, "GBP", "1.25")).rate_in_usd == "1.25"
    await credit_line(stub, trader, "1000", "GBP")
    res = rid("res-" + trader)
    await stub.Freeze(freeze_request(res, both_sides(trader, maker, "250")))
    assert amounts(await exposure(stub, trader)) == (0, 200, 800)
    assert amounts(await exposure(stub, trader, maker)) == (0, 250, 999750)

    # A new rate prices later freezes only: the reservation moves what it froze.
    await set_rate(stub, "GBP", "2.5")
    await stub.Commit(pb.CommitRequest(reservation_id=res))
    assert amounts(await exposure(stub, trader)) == (200, 0, 800)
    await stub.Freeze(freeze_request(rid("more-" + trader), both_sides(trader, maker, "250")))
    assert amounts(await exposure(stub, trader)) == (200, 100, 700)


async def test_a_converted_amount_is_rounded_up_to_the_line_currency(stub: Stub) -> None:
    trader, maker = await pair(stub)
    await set_rate(stub, "CHF", "1.1")
    await credit_line(stub, trader, "1000", "CHF")
    await stub.Freeze(freeze_request(rid("res-" + trader), both_sides(trader, maker, "100")))
    # 100 USD is 90.909090... CHF: the line never holds less than the notional.
    assert (await exposure(stub, trader)).frozen == "90.91"


async def test_a_missing_rate_is_a_failed_precondition_and_keeps_nothing(stub: Stub) -> None:
    trader, maker = await pair(stub)
    res = rid("res-" + trader)
    request = freeze_request(res, both_sides(trader, maker, "100"), currency="JPY")
    error = await refused(stub.Freeze(request))
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "no reference rate for JPY" in (error.details() or "")
    assert await lines_of_pair(stub, trader, maker) == [(0, 0, 1000000)] * 4, ALL_FOUR

    # Nothing was recorded: once an admin sets the rate, the same request freezes.
    await set_rate(stub, "JPY", "0.0065")
    assert (await stub.Freeze(request)).status == "FROZEN"
    assert (await exposure(stub, trader)).frozen == "0.65"


async def test_reference_rates_are_validated(stub: Stub) -> None:
    for currency, rate, expected in (
        ("USD", "2", "its own rate is 1"),
        ("EUR", "0", "positive"),
        ("EUR", "-1", "positive"),
        ("EUR", "x", "not a decimal"),
        ("XYZ", "1", "unsupported currency"),
    ):
        error = await refused(set_rate(stub, currency, rate))
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT, (currency, rate)
        assert expected in (error.details() or "")
    assert (await set_rate(stub, "USD", "1.000")).currency == "USD"


async def test_settling_a_reservation_frees_its_used_credit_once(stub: Stub) -> None:
    trader, maker = await pair(stub)
    res = rid("res-" + trader)
    await stub.Freeze(freeze_request(res, both_sides(trader, maker, "300")))
    error = await refused(stub.SettleReservation(pb.SettleReservationRequest(reservation_id=res)))
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert error.details() == f"reservation {res} is FROZEN; cannot settle"

    await stub.Commit(pb.CommitRequest(reservation_id=res))
    assert await lines_of_pair(stub, trader, maker) == [(300, 0, 999700)] * 4
    settle = pb.SettleReservationRequest(reservation_id=res, reason="booked")
    assert (await stub.SettleReservation(settle)).status == "SETTLED"
    assert await lines_of_pair(stub, trader, maker) == [(0, 0, 1000000)] * 4, ALL_FOUR

    assert (await stub.SettleReservation(settle)).status == "SETTLED"
    assert (await stub.Commit(pb.CommitRequest(reservation_id=res))).status == "SETTLED"
    assert await lines_of_pair(stub, trader, maker) == [(0, 0, 1000000)] * 4, ALL_FOUR
    error = await refused(stub.Release(pb.ReleaseRequest(reservation_id=res)))
    assert error.details() == f"reservation {res} is SETTLED; cannot release"
    failed = pb.SettleReservationRequest(reservation_id=res, failed=True)
    error = await refused(stub.SettleReservation(failed))
    assert error.details() == f"reservation {res} is SETTLED; cannot fail settlement"


async def test_a_failed_settlement_frees_the_credit_too(stub: Stub) -> None:
    trader, maker = await pair(stub)
    res = rid("res-" + trader)
    await stub.Freeze(freeze_request(res, both_sides(trader, maker, "300")))
    await stub.Commit(pb.CommitRequest(reservation_id=res))
    failed = pb.SettleReservationRequest(reservation_id=res, failed=True, reason="no USD")
    assert (await stub.SettleReservation(failed)).status == "SETTLEMENT_FAILED"
    assert await lines_of_pair(stub, trader, maker) == [(0, 0, 1000000)] * 4, ALL_FOUR
    assert (await stub.SettleReservation(failed)).status == "SETTLEMENT_FAILED"
    unknown = pb.SettleReservationRequest(reservation_id=str(uuid.uuid4()))
    assert (await refused(stub.SettleReservation(unknown))).code() is grpc.StatusCode.NOT_FOUND


async def test_an_rfq_commits_one_reservation_at_most(stub: Stub, engine: AsyncEngine) -> None:
    trader, maker = await pair(stub)
    rfq_id = "rfq-" + trader
    first, second = rid("first-" + trader), rid("second-" + trader)
    for res in (first, second):
        await stub.Freeze(freeze_request(res, both_sides(trader, maker, "10"), rfq_id=rfq_id))
    await stub.Commit(pb.CommitRequest(reservation_id=first))
    error = await refused(stub.Commit(pb.CommitRequest(reservation_id=second)))
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "already has a committed reservation" in (error.details() or "")
    # The refused Commit moved nothing: the second reservation is still frozen.
    assert amounts(await exposure(stub, trader)) == (10, 10, 999980)
    async with engine.connect() as conn:
        statuses = await conn.execute(
            text("SELECT status FROM risk.reservations WHERE rfq_id = :rfq ORDER BY status"),
            {"rfq": rfq_id},
        )
        assert statuses.scalars().all() == ["COMMITTED", "FROZEN"]
