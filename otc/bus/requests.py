"""Command/reply over Kafka: a sender publishes a message (through its outbox or a
producer) and awaits, bounded, the message on another topic that answers it.

`Waiters` is the table of waiting senders, each under a key. A sender registers its
key before its message can leave (`expecting`), so no answer can arrive
unexpected, and waits after, with a timeout. Whoever reads the answering topic hands
every payload to `resolve`; the table's `answer` says which key a payload answers
and with what, so the same table serves commands and any other request/response
pair (the quoting bench waits for each RFQ's quote). `Replies` is the commands'
table: a `CommandResult` answers the command whose id it carries. The reader is the
edge's order feed for the edge, and a `ReplyReader` for a caller with no consumer
of its own (settlement's end-of-day batch, the bench).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Generic, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from google.protobuf.message import Message as ProtoMessage

from otc.bus.envelope import InvalidMessage, decode
from otc.contracts import events_pb2 as ev

# Far above the messages awaited at any time: only those nobody answers fill it.
MAX_WAITING = 10_000
POLL_MS = 200

T = TypeVar("T")

# The key a payload answers and what it answers with, or None if it answers nothing.
Answer = Callable[[ProtoMessage], tuple[str, T] | None]


class Waiters(Generic[T]):
    def __init__(self, answer: Answer[T], max_waiting: int = MAX_WAITING) -> None:
        self._answer = answer
        self._waiting: OrderedDict[str, asyncio.Future[T | None]] = OrderedDict()
        self._max_waiting = max_waiting

    def expect(self, key: str) -> asyncio.Future[T | None]:
        future: asyncio.Future[T | None] = asyncio.get_running_loop().create_future()
        self._waiting[key] = future
        while len(self._waiting) > self._max_waiting:
            # The oldest waiter gives up as if its time had run out.
            _, oldest = self._waiting.popitem(last=False)
            if not oldest.done():
                oldest.set_result(None)
        return future

    @contextlib.contextmanager
    def expecting(self, key: str) -> Iterator[asyncio.Future[T | None]]:
        """Waits for the answer to a message sent in the block; forgets it if the
        sending fails."""
        future = self.expect(key)
        try:
            yield future
        except BaseException:
            self.forget(key)
            raise

    def forget(self, key: str) -> None:
        self._waiting.pop(key, None)

    def fail(self, error: Exception) -> None:
        """Every waiter gets `error`: the answers can no longer be read."""
        waiting = list(self._waiting.values())
        self._waiting.clear()
        for future in waiting:
            if not future.done():
                future.set_exception(error)

    def resolve(self, payload: ProtoMessage) -> None:
        answer = self._answer(payload)
        if answer is None:
            return
        key, value = answer
        future = self._waiting.pop(key, None)
        if future is not None and not future.done():
            future.set_result(value)

    async def wait(self, key: str, future: asyncio.Future[T | None], timeout: float) -> T | None:
        """The answer, or None if none came within `timeout` seconds."""
        try:
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(future, timeout)
            return None
        finally:
            self.forget(key)


def _by_command_id(payload: ProtoMessage) -> tuple[str, ev.CommandResult] | None:
    if isinstance(payload, ev.CommandResult):
        return payload.command_id, payload
    return None


class Replies(Waiters[ev.CommandResult]):
    def __init__(self, max_waiting: int = MAX_WAITING) -> None:
        super().__init__(_by_command_id, max_waiting)


class ReplyReader(Generic[T]):
    """Reads every partition of a topic from its end (no consumer group to join)
    and hands every payload to the waiters, from entering the block until leaving it.
    The positions are fixed on entering, so an answer cannot slip in before the read.

    Tansu answers a fetch only when its `fetch_max_wait_ms` runs out, so that wait
    bounds how late an answer is seen: a caller timing round trips shortens it, at
    the cost of more fetches."""

    def __init__(
        self, bootstrap: str, topic: str, waiters: Waiters[T], *, fetch_max_wait_ms: int = 50
    ) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            fetch_max_wait_ms=fetch_max_wait_ms,
        )
        self._topic = topic
        self._waiters = waiters
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ReplyReader[T]:
        consumer = self._consumer
        await consumer.start()
        try:
            await consumer.topics()
            parts = [
                TopicPartition(self._topic, p)
                for p in sorted(consumer.partitions_for_topic(self._topic) or ())
            ]
            consumer.assign(parts)
            await consumer.seek_to_end(*parts)
            for tp in parts:
                await consumer.position(tp)
        except BaseException:
            await consumer.stop()
            raise
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._task is not None:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        finally:
            await self._consumer.stop()

    async def _read(self) -> None:
        try:
            while True:
                batches = await self._consumer.getmany(timeout_ms=POLL_MS)
                for records in batches.values():
                    for record in records:
                        self._resolve(record.value)
        except Exception as exc:  # the waiters see why, instead of a timeout
            self._waiters.fail(exc)

    def _resolve(self, raw: bytes | None) -> None:
        try:
            payload = decode(raw).payload
        except InvalidMessage:
            return
        self._waiters.resolve(payload)
