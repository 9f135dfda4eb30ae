"""A Kafka consumer loop that never crashes on a bad message and never drops one.

Records of one partition are handled in order, each partition in a lane of its
own (otc/bus/lanes.py), so one partition waiting never stops the others. Each
record is handled by otc/bus/handling.py: a message that cannot be decoded or
fails validation goes to `<topic>.dlq` with the reason in a header, a transient
failure (database, broker, gRPC unavailable) is retried with backoff until it
succeeds, any other exception a few times and then dead-lettered. Offsets are
committed only up to records whose handler (and its transaction) finished, so a
crash means redelivery, which the idempotent handlers absorb.

The consumer reports its lag per partition (the partition's high watermark minus
the next offset it has to handle).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError

from otc.bus.handling import Handler as Handler
from otc.bus.handling import RecordHandler
from otc.bus.lanes import Lane
from otc.bus.producer import Publisher
from otc.logging import get_logger
from otc.metrics import CONSUMER_LAG, DLQ_MESSAGES

STOP_TIMEOUT_S = 5.0
FINISH_TIMEOUT_S = 10.0  # how long a stopping consumer lets a record in hand finish
MAX_BACKLOG = 2000  # records fetched ahead per partition before fetching pauses
LAG_REPORT_INTERVAL_S = 0.5

log = get_logger(__name__)


class Consumer:
    def __init__(
        self,
        *,
        service: str,
        bootstrap: str,
        topics: tuple[str, ...],
        handler: Handler,
        publisher: Publisher,
        group_id: str | None,
        from_end: bool = False,
        max_attempts: int = 5,
        session_timeout_ms: int = 10_000,
        fetch_max_wait_ms: int = 20,
    ) -> None:
        """`group_id=None` assigns every partition to this process (it sees all
        messages, with no group join); `from_end` then starts at the latest offsets."""
        self.service = service
        self._topics = topics
        self._handle_record = RecordHandler(
            service=service, handler=handler, publisher=publisher, max_attempts=max_attempts
        )
        self._group_id = group_id
        self._from_end = from_end
        self._stopping = asyncio.Event()
        self._lanes: dict[TopicPartition, Lane] = {}
        self._committed: dict[TopicPartition, int] = {}
        self._first_fetched: dict[TopicPartition, int] = {}
        self._lag_reported_at = 0.0
        for topic in topics:  # a zero to compare with from the start
            DLQ_MESSAGES.labels(service, topic)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=500,
            # The embedded broker answers a fetch only when its max wait runs out, so
            # this is the latency of every hop there (OTC_KAFKA_FETCH_MAX_WAIT_MS).
            fetch_max_wait_ms=fetch_max_wait_ms,
            # A crashed member holds its partitions until its session times out:
            # this bounds how long a kill -9 stalls the RFQs on those partitions.
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=1_000,
        )

    @property
    def ready(self) -> bool:
        return bool(self._consumer.assignment())

    async def start(self) -> None:
        await self._consumer.start()
        if self._group_id is not None:
            self._consumer.subscribe(list(self._topics), listener=_Rebalance(self))
            return
        await self._consumer.topics()  # loads cluster metadata
        partitions: list[TopicPartition] = []
        for topic in self._topics:
            ids = self._consumer.partitions_for_topic(topic) or set()
            if not ids:
                raise RuntimeError(f"topic {topic} does not exist; run `otc up` to create topics")
            partitions.extend(TopicPartition(topic, p) for p in sorted(ids))
        self._consumer.assign(partitions)
        if self._from_end:
            await self._consumer.seek_to_end(*partitions)

    async def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.service}: no partitions assigned after {timeout}s")
            await asyncio.sleep(0.05)

    async def wait_caught_up(self, timeout: float = 60.0) -> None:
        """Waits until the group has handled every record that was on its topics
        when this was called, whichever member handled it: a read model fed by the
        group is then at least as fresh as that moment. Counts committed offsets of
        every partition, so a partition still held by a member that died (until
        its session times out) keeps this waiting. Needs `run()` going."""
        if self._group_id is None:
            raise RuntimeError("only a consumer group has offsets to catch up with")
        await self._consumer.topics()
        partitions = [
            TopicPartition(topic, p)
            for topic in self._topics
            for p in sorted(self._consumer.partitions_for_topic(topic) or ())
        ]
        ends = await self._consumer.end_offsets(partitions)
        deadline = time.monotonic() + timeout
        for tp, end in ends.items():
            while end and (await self._consumer.committed(tp) or 0) < end:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.service}: {tp} not caught up after {timeout}s")
                await asyncio.sleep(0.1)

    async def stop(self) -> None:
        self._stopping.set()

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self._consumer.stop(), STOP_TIMEOUT_S)
        except TimeoutError:
            log.warning("consumer did not leave its group in time")

    async def run(self) -> None:
        try:
            while not self._stopping.is_set():
                batches = await self._consumer.getmany(timeout_ms=200, max_records=500)
                for tp, records in batches.items():
                    self._lane(tp).feed(records)
                    self._first_fetched.setdefault(tp, records[0].offset)
                self._backpressure()
                await self._commit()
                self._report_lag()
        finally:
            await asyncio.gather(*(lane.finish(FINISH_TIMEOUT_S) for lane in self._lanes.values()))
            await self._commit()

    def _lane(self, tp: TopicPartition) -> Lane:
        lane = self._lanes.get(tp)
        if lane is None:
            lane = self._lanes[tp] = Lane(self._handle_record)
        return lane

    def _report_lag(self) -> None:
        now = time.monotonic()
        if now - self._lag_reported_at < LAG_REPORT_INTERVAL_S:
            return
        self._lag_reported_at = now
        for tp in self._consumer.assignment():
            end = self._consumer.highwater(tp)
            if end is None:  # nothing fetched from it yet
                continue
            lane = self._lanes.get(tp)
            done = lane.next_offset if lane is not None else None
            if done is None:
                # nothing handled yet: everything from where fetching started waits;
                # a partition that has fetched nothing has nothing waiting
                done = self._committed.get(tp, self._first_fetched.get(tp, end))
            CONSUMER_LAG.labels(self.service, self._group_id or "", tp.topic, tp.partition).set(
                max(end - done, 0)
            )

    def _backpressure(self) -> None:
        """Stops fetching a partition whose lane is far behind, until it catches up."""
        paused = self._consumer.paused()
        for tp, lane in self._lanes.items():
            if lane.backlog >= MAX_BACKLOG and tp not in paused:
                self._consumer.pause(tp)
            elif lane.backlog < MAX_BACKLOG // 2 and tp in paused:
                self._consumer.resume(tp)

    async def _commit(self, only: set[TopicPartition] | None = None) -> None:
        if self._group_id is None:
            return
        offsets = {
            tp: lane.next_offset
            for tp, lane in self._lanes.items()
            if lane.next_offset is not None
            and lane.next_offset != self._committed.get(tp)
            and (only is None or tp in only)
        }
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
            self._committed.update(offsets)
        except CommitFailedError:
            log.warning("offset commit failed after a rebalance; messages will repeat")

    async def _partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._commit(only=revoked)
        for tp in revoked:
            lane = self._lanes.pop(tp, None)
            if lane is not None:
                # the new owner resumes from the committed offset; what this lane
                # still held is redelivered there, and handlers are idempotent
                await lane.abandon()
            self._committed.pop(tp, None)
            self._first_fetched.pop(tp, None)
            with contextlib.suppress(KeyError):  # its new owner reports it now
                CONSUMER_LAG.remove(self.service, self._group_id or "", tp.topic, str(tp.partition))


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, consumer: Consumer) -> None:
        self._owner = consumer

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._owner._partitions_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        return None
