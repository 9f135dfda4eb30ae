"""A maker's desk on the real Valkey and Kafka: the guards refuse before anything is
stored or published, replacements and withdrawals are published once the book
made them, market-maker protection halts a maker across processes and restarts,
and the kill switch leaves no quote behind.

Each test quotes for a maker of its own, so makers' indexes, halts and protection
windows never overlap between tests.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from redis.asyncio import Redis

from otc.bus.producer import Publisher
from otc.bus.topics import LASTLOOK_RESPONSES, RFQ_QUOTES
from otc.clock import SystemClock
from otc.contracts import events_pb2
from otc.instruments import INSTRUMENTS, Instrument
from otc.quote_book import QuoteBook, TakeOutcome
from quoting_service.adapters.contracts import LastLook
from quoting_service.adapters.protection import ProtectionWindow
from quoting_service.domain.guards import Guards
from quoting_service.domain.protection import ProtectionLimits
from quoting_service.service_layer.desk import Cause, MakerDesk, Protection, Refused
from quoting_service.service_layer.halts import Controls
from quoting_service.strategy import MarketView, Quote, RfqView, Side, TradeView
from stack.infra.provider import Endpoints
from tests.kafka_tap import KafkaTap, Seen
from tests.quoting_service.announce import announce

BTC = INSTRUMENTS["BTC-USD"]
MID = Decimal(65000)
TTL = timedelta(seconds=5)
GUARDS = Guards(band_bps=Decimal(100), max_block_notional=Decimal(1_000_000))
LIMITS = ProtectionLimits(
    window=timedelta(seconds=30), max_accepts=2, max_notional=Decimal(1_000_000)
)


class StaticMarket:
    def __init__(self, mid: Decimal | None = MID) -> None:
        self.mid = mid

    def view(self, instrument: Instrument) -> MarketView:
        return MarketView(instrument, self.mid, datetime.now(UTC))


@dataclass
class World:
    redis: Redis
    publisher: Publisher
    tap: KafkaTap

    def desk(
        self,
        maker: str,
        *,
        market: StaticMarket | None = None,
        limits: ProtectionLimits = LIMITS,
        redis: Redis | None = None,
    ) -> MakerDesk:
        redis = redis or self.redis
        return MakerDesk(
            maker=maker,
            book=QuoteBook(redis),
            publisher=self.publisher,
            market=market or StaticMarket(),
            guards=GUARDS,
            protection=Protection(ProtectionWindow(redis), limits),
            quote_ttl=TTL,
            clock=SystemClock(),
        )

    def controls(self) -> Controls:
        redis = self.redis
        return Controls(QuoteBook(redis), ProtectionWindow(redis), self.publisher, SystemClock())


@pytest.fixture(scope="module")
async def world(endpoints: Endpoints) -> AsyncIterator[World]:
    redis = Redis.from_url(endpoints.redis_url)
    publisher = Publisher(endpoints.kafka_bootstrap, "desk-test")
    await publisher.start()
    async with KafkaTap(endpoints.kafka_bootstrap, RFQ_QUOTES, LASTLOOK_RESPONSES) as tap:
        yield World(redis, publisher, tap)
    await publisher.stop()
    await redis.aclose()


def maker() -> str:
    return f"MM-D-{uuid.uuid4().hex[:8]}"


SENTINEL = maker()  # quotes on every test RFQ, after what a test checks


async def rfq(
    world: World,
    *makers: str,
    side: Side = Side.BUY,
    quantity: str = "2",
    requester: str | None = "TRADER-A",
) -> RfqView:
    """An RFQ to these makers (and the sentinel's), known to order_core."""
    view = RfqView(
        rfq_id=str(uuid.uuid4()),
        instrument=BTC,
        side=side,
        quantity=Decimal(quantity),
        expires_at=datetime.now(UTC) + timedelta(seconds=30),
        requester=requester,
    )
    request = events_pb2.RfqRequested(
        rfq_id=view.rfq_id,
        client_rfq_id=view.rfq_id,
        requester=requester or "TRADER-A",
        instrument=BTC.symbol,
        side={Side.BUY: events_pb2.SIDE_BUY, Side.SELL: events_pb2.SIDE_SELL}[side],
        quantity=quantity,
        counterparties=[*makers, SENTINEL],
    )
    request.expires_at.FromDatetime(view.expires_at)
    await announce(world.publisher, request)
    return view


def offer(price: str = "65010") -> Quote:
    return Quote(bid_px=None, offer_px=Decimal(price), valid_for=TTL)


def look(rfq_id: str, quote_id: str, *, price: str = "65010", quantity: str = "2") -> LastLook:
    trade = TradeView(rfq_id, quote_id, BTC, Side.SELL, Decimal(quantity), Decimal(price))
    return LastLook(trade, str(uuid.uuid4()), datetime.now(UTC) + timedelta(seconds=5))


def of(kind: type, rfq_id: str) -> Callable[[Seen], bool]:
    def matches(seen: Seen) -> bool:
        payload = seen.message.payload if seen.message is not None else None
        return isinstance(payload, kind) and getattr(payload, "rfq_id", None) == rfq_id

    return matches


async def published_after_sentinel(world: World, kind: type, request: RfqView) -> list[Seen]:
    """What was published of `kind` on the RFQ up to a sentinel quote, published on
    the same key (so the same partition, in order) by another maker afterwards."""
    rfq_id = request.rfq_id
    plain = dataclasses.replace(request, side=Side.BUY, quantity=Decimal(2), requester=None)
    await world.desk(SENTINEL).quote(plain, offer(), Cause("sentinel"))
    await world.tap.wait_for(
        lambda s: (
            of(events_pb2.QuoteSubmitted, rfq_id)(s)
            and s.message is not None
            and s.message.correlation_id == "sentinel"
        )
    )
    return [s for s in world.tap.seen if of(kind, rfq_id)(s)]


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("offer far above the mid", "price_band"),
        ("bid far below the mid", "price_band"),
        ("a block too large", "block_size"),
        ("its own RFQ", "self_trade"),
        ("no reference price", "no_reference_price"),
        ("a bid on a buy RFQ", "invalid_quote"),
    ],
)
async def test_a_quote_the_guards_refuse_is_neither_stored_nor_published(
    world: World, case: str, code: str
) -> None:
    who = maker()
    side, quantity, requester = Side.BUY, "2", "TRADER-A"
    quote, market = offer(), StaticMarket()
    if case == "offer far above the mid":
        quote = offer("66000")  # 154 bps off, the band is 100
    elif case == "bid far below the mid":
        side = Side.SELL
        quote = Quote(bid_px=Decimal("64000"), offer_px=None, valid_for=TTL)
    elif case == "a block too large":
        quantity = "16"  # 16 x 65010 > 1,000,000
    elif case == "its own RFQ":
        requester = who
    elif case == "no reference price":
        market = StaticMarket(None)
    else:
        quote = Quote(bid_px=Decimal("64990"), offer_px=Decimal("65010"), valid_for=TTL)
    request = await rfq(world, who, side=side, quantity=quantity, requester=requester)
    with pytest.raises(Refused) as refused:
        await world.desk(who, market=market).quote(request, quote, Cause("c"))
    assert refused.value.code == code
    assert await QuoteBook(world.redis).live(who, 0) == []
    assert await published_after_sentinel(world, events_pb2.QuoteSubmitted, request) != []
    assert not [
        s
        for s in world.tap.seen
        if of(events_pb2.QuoteSubmitted, request.rfq_id)(s)
        and s.message is not None
        and s.message.payload.maker == who
    ]


async def test_a_replacement_is_published_naming_the_quote_it_supersedes(world: World) -> None:
    desk = world.desk(maker())
    request = await rfq(world, desk.maker)
    old = await desk.quote(request, offer("65010"), Cause("c"))
    new = await desk.replace(request, old.quote_id, offer("65020"), Cause("c"))
    [_, seen] = await world.tap.wait_for(of(events_pb2.QuoteSubmitted, request.rfq_id), count=2)
    assert seen.message is not None
    submitted = seen.message.payload
    assert isinstance(submitted, events_pb2.QuoteSubmitted)
    assert (submitted.quote_id, submitted.replaces_quote_id) == (new.quote_id, old.quote_id)
    assert submitted.offer_px == "65020"
    book = QuoteBook(world.redis)
    assert (await book.take(request.rfq_id, old.quote_id, taker="t", maker=desk.maker))[
        0
    ] is TakeOutcome.REPLACED


async def test_a_withdrawal_is_published_and_another_maker_cannot_withdraw(world: World) -> None:
    owner, intruder = world.desk(maker()), world.desk(maker())
    request = await rfq(world, owner.maker, intruder.maker)
    quote = await owner.quote(request, offer(), Cause("c"))
    with pytest.raises(Refused) as refused:
        await intruder.withdraw(request.rfq_id, quote.quote_id, "mine now", Cause("c"))
    assert refused.value.code == "not_found"
    with pytest.raises(Refused):
        await intruder.replace(request, quote.quote_id, offer(), Cause("c"))
    assert await published_after_sentinel(world, events_pb2.QuoteWithdrawn, request) == []

    await owner.withdraw(request.rfq_id, quote.quote_id, "repricing", Cause("c"))
    [seen] = await world.tap.wait_for(of(events_pb2.QuoteWithdrawn, request.rfq_id))
    assert seen.message is not None
    withdrawal = seen.message.payload
    assert isinstance(withdrawal, events_pb2.QuoteWithdrawn)
    assert (withdrawal.quote_id, withdrawal.maker, withdrawal.reason) == (
        quote.quote_id,
        owner.maker,
        "repricing",
    )


async def test_too_many_accepts_withdraw_every_quote_and_halt_across_restarts(
    world: World, endpoints: Endpoints
) -> None:
    who = maker()
    first = world.desk(who)
    requests = [await rfq(world, who) for _ in range(3)]
    quotes = [await first.quote(r, offer(), Cause("c")) for r in requests]
    hit = look(requests[0].rfq_id, quotes[0].quote_id)
    await first.last_look_requested(hit, Cause("c"))
    await first.last_look_requested(hit, Cause("c"))  # the same accept again counts once
    await first.last_look_requested(look(requests[1].rfq_id, quotes[1].quote_id), Cause("c"))
    assert await QuoteBook(world.redis).halted(who) is None  # 2 accepts: at the limit

    # a restarted process (new connections, new objects) shares the window
    redis = Redis.from_url(endpoints.redis_url)
    try:
        restarted = world.desk(who, redis=redis)
        await restarted.last_look_requested(look(requests[2].rfq_id, "q"), Cause("c"))
        halted = await QuoteBook(redis).halted(who)
        assert halted is not None
        assert "3 quotes accepted" in halted
        for request, quote in zip(requests, quotes, strict=True):
            [seen] = await world.tap.wait_for(of(events_pb2.QuoteWithdrawn, request.rfq_id))
            assert seen.message is not None
            assert seen.message.payload.quote_id == quote.quote_id
            assert seen.message.payload.reason.startswith("market-maker protection")
        with pytest.raises(Refused) as refused:
            await world.desk(who, redis=redis).quote(await rfq(world, who), offer(), Cause("c"))
        assert refused.value.code == "halted"
    finally:
        await redis.aclose()


async def test_too_much_notional_halts_the_maker(world: World) -> None:
    who = maker()
    desk = world.desk(who)
    request = await rfq(world, who)
    await desk.quote(request, offer(), Cause("c"))
    await desk.last_look_requested(look(request.rfq_id, "q", quantity="10"), Cause("c"))
    assert await QuoteBook(world.redis).halted(who) is None  # 650,100
    await desk.last_look_requested(look(request.rfq_id, "q", quantity="6"), Cause("c"))
    halted = await QuoteBook(world.redis).halted(who)
    assert halted is not None
    assert "notional 1040160" in halted


async def test_the_kill_switch_withdraws_everything_and_reset_lets_it_quote(world: World) -> None:
    who = maker()
    desk, controls = world.desk(who), world.controls()
    requests = [await rfq(world, who) for _ in range(3)]
    for request in requests:
        await desk.quote(request, offer(), Cause("c"))
    assert await controls.status(who) == (None, 3)

    withdrawn = await controls.kill(who, by="ops")
    assert sorted(q.rfq_id for q in withdrawn) == sorted(r.rfq_id for r in requests)
    for request in requests:
        await world.tap.wait_for(of(events_pb2.QuoteWithdrawn, request.rfq_id))
    assert await controls.status(who) == ("kill switch (ops)", 0)
    with pytest.raises(Refused):
        await desk.quote(await rfq(world, who), offer(), Cause("c"))

    assert await controls.reset(who)
    assert (await desk.quote(await rfq(world, who), offer(), Cause("c"))).maker == who


@pytest.mark.parametrize("late", [False, True])
async def test_a_last_look_answer_repeats_the_price_unless_too_late(
    world: World, late: bool
) -> None:
    desk = world.desk(maker())
    request = await rfq(world, desk.maker)
    pending = look(request.rfq_id, "quote-1", price="65010.5")
    if late:
        pending = LastLook(pending.trade, pending.reservation_id, datetime.now(UTC))
        with pytest.raises(Refused) as refused:
            await desk.answer_last_look(pending, Cause("c"), confirmed=True)
        assert refused.value.code == "too_late"
        await desk.answer_last_look(look(request.rfq_id, "sentinel"), Cause("c"), confirmed=True)
        [seen] = await world.tap.wait_for(of(events_pb2.LastLookResponse, request.rfq_id))
        assert seen.message is not None
        assert seen.message.payload.quote_id == "sentinel"  # nothing before it
        return
    await desk.answer_last_look(pending, Cause("c"), confirmed=True)
    [seen] = await world.tap.wait_for(of(events_pb2.LastLookResponse, request.rfq_id))
    assert seen.message is not None
    response = seen.message.payload
    assert isinstance(response, events_pb2.LastLookResponse)
    assert (response.quote_id, response.price, response.confirmed) == ("quote-1", "65010.5", True)
    assert response.reservation_id == pending.reservation_id
