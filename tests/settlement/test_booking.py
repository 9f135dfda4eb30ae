"""Settlement as a running service over real Kafka and PostgreSQL.

Another settlement process (group "settlement") may consume the same topics in this
session; idempotency makes the outcome the same whichever instance books a trade,
so the tests assert outcomes (rows, events per trade id), never which instance acted.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from otc.bus.envelope import InvalidMessage, decode, encode
from otc.bus.producer import Publisher
from otc.bus.topics import SETTLEMENT_EVENTS, TRADE_CONFIRMED, dlq
from otc.clock import SystemClock
from otc.ids import new_id
from otc.service import Service
from otc.settings import Settings
from settlement.bootstrap import build
from settlement.domain.ledger import Account
from stack.infra.provider import Endpoints
from tests.kafka_tap import KafkaTap, Seen
from tests.settlement.helpers import (
    FAILED,
    SETTLED,
    balances_of,
    confirmed,
    demo,
    funded_parties,
    ledger_of,
    outbox_events,
    sums_by_asset,
    trade_row,
)


@pytest.fixture(scope="module")
async def settlement(endpoints: Endpoints) -> AsyncIterator[Service]:
    settings = Settings(
        database_url=endpoints.database_url,
        kafka_bootstrap=endpoints.kafka_bootstrap,
        redis_url=endpoints.redis_url,
        settlement_max_attempts=2,
        settlement_retry_base_ms=100,
    )
    service = build(settings, group_id=f"settlement-test-{uuid.uuid4().hex}")
    await service.start()
    running = asyncio.create_task(service.run())
    try:
        async with asyncio.timeout(60):
            while not service.ready():
                assert not running.done(), "settlement stopped before it was ready"
                await asyncio.sleep(0.05)
        yield service
    finally:
        await service.stop()
        await running
        await service.close()


@pytest.fixture(scope="module")
async def publisher(endpoints: Endpoints) -> AsyncIterator[Publisher]:
    pub = Publisher(endpoints.kafka_bootstrap, "settlement-test")
    await pub.start()
    yield pub
    await pub.stop()


def event_for(type_: str, trade_id: str) -> Callable[[Seen], bool]:
    def matches(seen: Seen) -> bool:
        m = seen.message
        return m is not None and m.type == type_ and getattr(m.payload, "trade_id", "") == trade_id

    return matches


def raw_on(topic: str, raw: bytes) -> Callable[[Seen], bool]:
    return lambda seen: seen.topic == topic and seen.raw == raw


@pytest.mark.usefixtures("settlement")
async def test_confirmed_trade_settles_once_and_moves_balances_exactly(
    endpoints: Endpoints, engine: AsyncEngine, publisher: Publisher
) -> None:
    buyer, seller = await funded_parties(engine)
    trade = confirmed(buyer, seller, quantity="2.5", price="65000.10")
    correlation_id = new_id()

    async with KafkaTap(endpoints.kafka_bootstrap, SETTLEMENT_EVENTS) as tap:
        event_id = await publisher.publish(
            TRADE_CONFIRMED, trade.rfq_id, trade, correlation_id=correlation_id
        )
        [seen] = await tap.wait_for(event_for(SETTLED, trade.trade_id))

    assert seen.key == trade.rfq_id
    assert seen.message is not None
    assert seen.message.correlation_id == correlation_id
    assert seen.message.causation_id == event_id
    assert [m.type for m in await outbox_events(engine, trade.rfq_id)] == [SETTLED]

    row = await trade_row(engine, trade.trade_id)
    assert row is not None
    assert (row["status"], row["reason"]) == ("SETTLED", "")
    entries = await ledger_of(engine, trade.trade_id)
    assert len(entries) == 4
    assert sums_by_asset(entries) == {"BTC": 0, "USD": 0}

    notional = Decimal("162500.250")
    assert await balances_of(engine, buyer, seller) == {
        Account(buyer, "BTC"): demo("BTC") + Decimal("2.5"),
        Account(seller, "BTC"): demo("BTC") - Decimal("2.5"),
        Account(buyer, "USD"): demo("USD") - notional,
        Account(seller, "USD"): demo("USD") + notional,
        Account(buyer, "ETH"): demo("ETH"),
        Account(seller, "ETH"): demo("ETH"),
        Account(buyer, "EUR"): demo("EUR"),
        Account(seller, "EUR"): demo("EUR"),
    }


@pytest.mark.usefixtures("settlement")
async def test_a_message_delivered_twice_books_and_emits_once(
    endpoints: Endpoints, engine: AsyncEngine, publisher: Publisher
) -> None:
    buyer, seller = await funded_parties(engine)
    trade = confirmed(buyer, seller, quantity="1", price="65000")
    # Same key, so the same partition: whoever books the sentinel has handled both
    # copies of the duplicate before it.
    sentinel = confirmed(buyer, seller, quantity="3", price="65000", rfq_id=trade.rfq_id)
    _, raw = encode(
        trade,
        producer="settlement-test",
        occurred_at=SystemClock().now(),
        correlation_id=new_id(),
    )

    async with KafkaTap(endpoints.kafka_bootstrap, SETTLEMENT_EVENTS) as tap:
        await publisher.send_raw(TRADE_CONFIRMED, trade.rfq_id, raw)
        await publisher.send_raw(TRADE_CONFIRMED, trade.rfq_id, raw)
        await publisher.publish(TRADE_CONFIRMED, trade.rfq_id, sentinel, correlation_id=new_id())
        await tap.wait_for(event_for(SETTLED, sentinel.trade_id))
        [_] = await tap.wait_for(event_for(SETTLED, trade.trade_id))

    queued = [
        (m.type, getattr(m.payload, "trade_id", ""))
        for m in await outbox_events(engine, trade.rfq_id)
    ]
    assert queued == [(SETTLED, trade.trade_id), (SETTLED, sentinel.trade_id)]
    assert len(await ledger_of(engine, trade.trade_id)) == 4
    moved = await balances_of(engine, buyer, seller)
    assert moved[Account(buyer, "BTC")] == demo("BTC") + 4
    assert moved[Account(seller, "USD")] == demo("USD") + 4 * 65000


@pytest.mark.usefixtures("settlement")
async def test_insufficient_balance_fails_with_the_reason_and_moves_nothing(
    endpoints: Endpoints, engine: AsyncEngine, publisher: Publisher
) -> None:
    buyer, seller = await funded_parties(engine)
    before = await balances_of(engine, buyer, seller)
    trade = confirmed(buyer, seller, quantity="1500", price="65000")  # seller holds 1000 BTC

    async with KafkaTap(endpoints.kafka_bootstrap, SETTLEMENT_EVENTS) as tap:
        await publisher.publish(TRADE_CONFIRMED, trade.rfq_id, trade, correlation_id=new_id())
        [seen] = await tap.wait_for(event_for(FAILED, trade.trade_id))

    assert seen.message is not None
    reason = getattr(seen.message.payload, "reason", "")
    for expected in (seller, "BTC", "1500", "1000"):
        assert expected in reason
    row = await trade_row(engine, trade.trade_id)
    assert row is not None
    assert (row["status"], row["reason"]) == ("FAILED", reason)
    assert await ledger_of(engine, trade.trade_id) == []
    assert await balances_of(engine, buyer, seller) == before
    assert [m.type for m in await outbox_events(engine, trade.rfq_id)] == [FAILED]


@pytest.mark.usefixtures("settlement")
async def test_undecodable_and_invalid_messages_are_dead_lettered_and_booking_goes_on(
    endpoints: Endpoints, engine: AsyncEngine, publisher: Publisher
) -> None:
    buyer, seller = await funded_parties(engine)
    garbage = b"\xff\xff\xff not an envelope"
    with pytest.raises(InvalidMessage):
        decode(garbage)
    bad = confirmed(buyer, seller)
    bad.quantity = "abc"
    _, bad_raw = encode(
        bad, producer="settlement-test", occurred_at=SystemClock().now(), correlation_id=new_id()
    )
    # Same key, so the valid trade queues behind both bad messages on one partition.
    good = confirmed(buyer, seller, rfq_id=bad.rfq_id)
    dead_letters = dlq(TRADE_CONFIRMED)

    async with KafkaTap(endpoints.kafka_bootstrap, dead_letters, SETTLEMENT_EVENTS) as tap:
        await publisher.send_raw(TRADE_CONFIRMED, bad.rfq_id, garbage)
        await publisher.send_raw(TRADE_CONFIRMED, bad.rfq_id, bad_raw)
        await publisher.publish(TRADE_CONFIRMED, good.rfq_id, good, correlation_id=new_id())
        garbage_seen = await tap.wait_for(raw_on(dead_letters, garbage))
        bad_seen = await tap.wait_for(raw_on(dead_letters, bad_raw))
        await tap.wait_for(event_for(SETTLED, good.trade_id))

    assert all("dlq.reason" in seen.headers for seen in garbage_seen + bad_seen)
    reason = bad_seen[0].headers["dlq.reason"]
    assert reason.startswith(b"InvalidMessage")
    assert b"quantity" in reason
    assert await trade_row(engine, bad.trade_id) is None
    good_row = await trade_row(engine, good.trade_id)
    assert good_row is not None
    assert good_row["status"] == "SETTLED"
