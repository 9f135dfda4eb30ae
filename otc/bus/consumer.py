"""A Kafka consumer loop that never crashes on a bad message and never drops one.

Records of one partition are handled in order; partitions are handled
concurrently. A message that cannot be decoded or fails validation goes to
`<topic>.dlq` with the reason in a header. A transient failure (database, broker,
gRPC unavailable) is retried with backoff until it succeeds; any other exception is
retried a few times and then dead-lettered. Offsets are committed only after the
handler (and its transaction) finished, so a crash means redelivery, which the
idempotent handlers absorb.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError

from otc.bus.envelope import InvalidMessage, Message, decode
from otc.bus.producer import Publisher
from otc.bus.topics import dlq
from otc.errors import DomainError, is_transient
from otc.logging import correlation, get_logger
from otc.metrics import DLQ_MESSAGES, HANDLER_SECONDS, MESSAGES_CONSUMED

Handler = Callable[[str, Message], Awaitable[None]]

STOP_TIMEOUT_S = 5.0

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
    ) -> None:
        """`group_id=None` assigns every partition to this process (it sees all
        messages, with no group join); `from_end` then starts at the latest offsets."""
        self.service = service
        self._topics = topics
        self._handler = handler
        self._publisher = publisher
        self._group_id = group_id
        self._from_end = from_end
        self._max_attempts = max_attempts
        self._stopping = asyncio.Event()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=500,
            # Tansu answers a fetch only when its max wait runs out, so this bounds the
            # latency of every hop; on loopback the extra polling costs little.
            fetch_max_wait_ms=20,
            # A crashed member holds its partitions until its session times out;
            # 10 s bounds how long a kill -9 stalls the RFQs on those partitions.
            session_timeout_ms=10_000,
            heartbeat_interval_ms=1_000,
        )

    @property
    def ready(self) -> bool:
        return bool(self._consumer.assignment())

    async def start(self) -> None:
        await self._consumer.start()
        if self._group_id is not None:
            self._consumer.subscribe(list(self._topics))
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

    async def stop(self) -> None:
        self._stopping.set()

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self._consumer.stop(), STOP_TIMEOUT_S)
        except TimeoutError:
            log.warning("consumer did not leave its group in time")

    async def run(self) -> None:
        while not self._stopping.is_set():
            batches = await self._consumer.getmany(timeout_ms=200, max_records=500)
            if not batches:
                continue
            await asyncio.gather(*(self._handle_partition(recs) for recs in batches.values()))
            if self._group_id is not None:
                offsets = {tp: recs[-1].offset + 1 for tp, recs in batches.items()}
                try:
                    await self._consumer.commit(offsets)
                except CommitFailedError:
                    log.warning("offset commit failed after a rebalance; messages will repeat")

    async def _handle_partition(self, records: list[ConsumerRecord]) -> None:
        for record in records:
            await self._handle_record(record)

    async def _handle_record(self, record: ConsumerRecord) -> None:
        topic = record.topic
        started = time.perf_counter()
        try:
            message = decode(record.value)
        except InvalidMessage as exc:
            await self._dead_letter(record, str(exc))
            return
        with correlation(message.correlation_id, event_id=message.event_id, topic=topic):
            attempt = 0
            while True:
                attempt += 1
                try:
                    await self._handler(topic, message)
                except (InvalidMessage, DomainError) as exc:
                    await self._dead_letter(record, f"{type(exc).__name__}: {exc}")
                    return
                except Exception as exc:
                    transient = is_transient(exc)
                    if not transient and attempt >= self._max_attempts:
                        log.exception("handler failed; dead-lettering", attempts=attempt)
                        await self._dead_letter(record, f"{type(exc).__name__}: {exc}")
                        return
                    log.warning(
                        "handler failed; retrying",
                        error=f"{type(exc).__name__}: {exc}",
                        attempt=attempt,
                        transient=transient,
                    )
                    delay = getattr(exc, "retry_after", None) or min(0.05 * 2**attempt, 2.0)
                    await asyncio.sleep(delay)
                    continue
                MESSAGES_CONSUMED.labels(self.service, topic, "ok").inc()
                HANDLER_SECONDS.labels(self.service, topic).observe(time.perf_counter() - started)
                return

    async def _dead_letter(self, record: ConsumerRecord, reason: str) -> None:
        log.warning(
            "message dead-lettered", topic=record.topic, offset=record.offset, reason=reason
        )
        headers = [
            *list(record.headers or ()),
            ("dlq.reason", reason.encode()[:1000]),
            ("dlq.source", f"{record.topic}/{record.partition}/{record.offset}".encode()),
            ("dlq.service", self.service.encode()),
        ]
        while True:
            try:
                await self._publisher.send_raw(dlq(record.topic), record.key, record.value, headers)
                break
            except Exception as exc:  # the DLQ must not lose the message either
                log.warning("dead-letter publish failed; retrying", error=str(exc))
                await asyncio.sleep(0.5)
        DLQ_MESSAGES.labels(self.service, record.topic).inc()
        MESSAGES_CONSUMED.labels(self.service, record.topic, "dead_lettered").inc()
