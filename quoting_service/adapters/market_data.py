"""The latest reference mid per instrument, read from `market.prices`.

Every quoter needs every price, and only the latest one, so this reader takes all
partitions itself (no consumer group: nothing to join, no offsets to commit) and
starts a few dozen records before the end of each, which holds the current mid of
every instrument because the feed keys ticks by instrument. `start` reads up to the
end it found, so a started reader already knows the current mids.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from otc.bus.envelope import InvalidMessage, decode
from otc.bus.topics import MARKET_PRICES
from otc.contracts import events_pb2
from otc.instruments import INSTRUMENTS, Instrument
from otc.logging import get_logger
from otc.money import InvalidDecimal, parse_decimal
from quoting_service.strategy import MarketView

log = get_logger(__name__)

CATCH_UP_TIMEOUT_S = 10.0


class MarketData:
    def __init__(self, bootstrap: str, *, history: int = 50) -> None:
        self._history = history
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        self._mids: dict[str, MarketView] = {}
        self._stopping = asyncio.Event()
        self.started = False

    def view(self, instrument: Instrument) -> MarketView:
        return self._mids.get(instrument.symbol) or MarketView(instrument, None, None)

    async def start(self) -> None:
        await self._consumer.start()
        await self._consumer.topics()  # loads cluster metadata
        partitions = [
            TopicPartition(MARKET_PRICES, p)
            for p in sorted(self._consumer.partitions_for_topic(MARKET_PRICES) or ())
        ]
        if not partitions:
            raise RuntimeError(f"topic {MARKET_PRICES} does not exist; run `otc up` to create it")
        self._consumer.assign(partitions)
        ends = await self._consumer.end_offsets(partitions)
        firsts = await self._consumer.beginning_offsets(partitions)
        for tp in partitions:
            self._consumer.seek(tp, max(firsts[tp], ends[tp] - self._history))
        await self._catch_up({tp: end for tp, end in ends.items() if end > firsts[tp]})
        self.started = True

    async def _catch_up(self, ends: dict[TopicPartition, int]) -> None:
        deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
        while ends:
            if time.monotonic() > deadline:
                log.warning("reference prices not caught up; starting anyway", behind=len(ends))
                return
            await self._poll()
            for tp in list(ends):
                if await self._consumer.position(tp) >= ends[tp]:
                    del ends[tp]

    async def run(self) -> None:
        while not self._stopping.is_set():
            await self._poll()

    async def stop(self) -> None:
        self._stopping.set()

    async def close(self) -> None:
        await self._consumer.stop()

    async def _poll(self) -> None:
        batches = await self._consumer.getmany(timeout_ms=200)
        for records in batches.values():
            for record in records:
                self._apply(record)

    def _apply(self, record: ConsumerRecord) -> None:
        try:
            message = decode(record.value)
            tick = message.payload
            if not isinstance(tick, events_pb2.PriceTick):
                raise InvalidMessage(f"{message.type} on {MARKET_PRICES}")
            instrument = INSTRUMENTS.get(tick.instrument)
            if instrument is None:
                raise InvalidMessage(f"unknown instrument {tick.instrument!r}")
            mid = parse_decimal(tick.mid, field="mid", positive=True)
        except (InvalidMessage, InvalidDecimal) as exc:
            # not dead-lettered: every quoter reads every tick, so each one would
            # file its own copy of the same bad record
            log.warning("reference price ignored", offset=record.offset, reason=str(exc))
            return
        at = tick.at.ToDatetime(tzinfo=UTC) if tick.HasField("at") else message.occurred_at
        known = self._mids.get(instrument.symbol)
        if known is not None and known.at is not None and at < known.at:
            return  # a stale tick must not overwrite a newer mid
        self._mids[instrument.symbol] = MarketView(instrument, mid, at)
