"""Settlement tells risk_limits through `settlement.events`: the running service
consumes TradeSettled and SettlementFailed from real Kafka and frees the used
credit of the reservation behind the trade, once, however often the event comes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from google.protobuf.message import Message as ProtoMessage
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from otc.bus.envelope import InvalidMessage, Message
from otc.bus.producer import Publisher
from otc.bus.topics import SETTLEMENT_EVENTS
from otc.contracts import events_pb2
from otc.contracts import risk_limits_pb2 as pb
from otc.ids import new_id
from risk_limits.entrypoints.consumer import trade_outcome_command
from stack.infra.provider import Endpoints
from tests.risk_limits.conftest import (
    Running,
    Stub,
    amounts,
    both_sides,
    exposure,
    freeze_request,
    pair,
    rid,
)


@pytest.fixture(scope="module")
async def publisher(endpoints: Endpoints) -> AsyncIterator[Publisher]:
    pub = Publisher(endpoints.kafka_bootstrap, "settlement-test")
    await pub.start()
    yield pub
    await pub.stop()


async def committed_trade(stub: Stub, amount: str = "500") -> tuple[str, str, str, str]:
    """(trader, maker, reservation id, rfq id) of a trade whose credit is committed."""
    trader, maker = await pair(stub)
    res, rfq_id = rid("res-" + trader), new_id()
    await stub.Freeze(freeze_request(res, both_sides(trader, maker, amount), rfq_id=rfq_id))
    await stub.Commit(pb.CommitRequest(reservation_id=res))
    return trader, maker, res, rfq_id


async def announce(publisher: Publisher, rfq_id: str, event: ProtoMessage, event_id: str) -> None:
    await publisher.publish(
        SETTLEMENT_EVENTS, rfq_id, event, correlation_id=rfq_id, event_id=event_id
    )


async def status_of(engine: AsyncEngine, reservation_id: str) -> tuple[str, str]:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT status, reason FROM risk.reservations WHERE reservation_id = :id"),
                {"id": reservation_id},
            )
        ).one()
        return row.status, row.reason


async def wait_status(engine: AsyncEngine, reservation_id: str, wanted: str) -> str:
    deadline = time.monotonic() + 15
    while (found := await status_of(engine, reservation_id))[0] != wanted:
        assert time.monotonic() < deadline, f"reservation still {found[0]}, not {wanted}"
        await asyncio.sleep(0.05)
    return found[1]


def consumed() -> float:
    """Settlement events the in-process services have handled, whatever the outcome."""
    outcomes = ("settled", "settlement_failed", "replayed", "duplicate", "unknown")
    return sum(
        REGISTRY.get_sample_value("otc_risk_settlements_total", {"outcome": o}) or 0.0
        for o in outcomes
    )


async def test_a_settled_trade_frees_the_exposure_once(
    risk: Running, stub: Stub, publisher: Publisher, engine: AsyncEngine
) -> None:
    trader, maker, res, rfq_id = await committed_trade(stub)
    assert amounts(await exposure(stub, trader, maker)) == (500, 0, 999500)
    trade_id = new_id()
    settled = events_pb2.TradeSettled(trade_id=trade_id, rfq_id=rfq_id)
    settled.settled_at.FromDatetime(datetime.now(UTC))
    before = consumed()

    event_id = new_id()
    await announce(publisher, rfq_id, settled, event_id)
    await announce(publisher, rfq_id, settled, event_id)  # a redelivery
    # The same news again under a new event id (settlement re-announcing it).
    await announce(publisher, rfq_id, settled, new_id())
    assert await wait_status(engine, res, "SETTLED") == f"trade {trade_id} settled"
    deadline = time.monotonic() + 15
    while consumed() < before + 3:
        assert time.monotonic() < deadline, "the repeated events were never consumed"
        await asyncio.sleep(0.05)
    for party, counterparty in ((trader, ""), (maker, ""), (trader, maker), (maker, trader)):
        assert amounts(await exposure(stub, party, counterparty)) == (0, 0, 1000000)
    assert (await status_of(engine, res))[0] == "SETTLED"


async def test_a_failed_settlement_frees_the_exposure_too(
    risk: Running, stub: Stub, publisher: Publisher, engine: AsyncEngine
) -> None:
    trader, maker, res, rfq_id = await committed_trade(stub)
    trade_id = new_id()
    failed = events_pb2.SettlementFailed(trade_id=trade_id, rfq_id=rfq_id, reason="short of USD")
    await announce(publisher, rfq_id, failed, new_id())
    reason = await wait_status(engine, res, "SETTLEMENT_FAILED")
    assert reason == f"trade {trade_id} failed to settle: short of USD"
    assert amounts(await exposure(stub, maker, trader)) == (0, 0, 1000000)


def message(payload: ProtoMessage) -> Message:
    return Message(
        event_id=new_id(),
        type=str(payload.DESCRIPTOR.full_name),
        occurred_at=datetime.now(UTC),
        producer="test",
        correlation_id="",
        causation_id="",
        payload=payload,
    )


def test_other_payloads_and_events_without_an_rfq_are_dead_lettered() -> None:
    with pytest.raises(InvalidMessage, match="expected a TradeSettled or SettlementFailed"):
        trade_outcome_command(message(events_pb2.PriceTick(instrument="BTC-USD", mid="1")))
    with pytest.raises(InvalidMessage, match="without an rfq_id"):
        trade_outcome_command(message(events_pb2.TradeSettled(trade_id="t")))
    command = trade_outcome_command(message(events_pb2.SettlementFailed(rfq_id="r", reason="x")))
    assert (command.rfq_id, command.failed, command.reason) == ("r", True, "x")
