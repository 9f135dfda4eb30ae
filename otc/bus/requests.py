"""Command/reply over Kafka: a sender publishes a command (through its outbox or a
producer) and awaits, bounded, the `CommandResult` whose command id matches.

`Replies` is the table of waiting senders. A sender registers its command id
before the command can leave (`expecting`), so no reply can arrive unexpected,
and waits after, with a timeout. Whoever reads the reply topic hands every
`CommandResult` to `resolve`: the edge's order feed for the edge, a `ReplyReader`
for a caller with no consumer of its own (settlement's end-of-day batch).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Iterator
from types import TracebackType

from aiokafka import AIOKafkaConsumer, TopicPartition

from otc.bus.envelope import InvalidMessage, decode
from otc.contracts import events_pb2 as ev

# Far above the commands in flight at any time: only commands nobody answers fill it.
MAX_WAITING = 10_000
POLL_MS = 200

Reply = asyncio.Future[ev.CommandResult | None]


class Replies:
    def __init__(self, max_waiting: int = MAX_WAITING) -> None:
        self._waiting: OrderedDict[str, Reply] = OrderedDict()
        self._max_waiting = max_waiting

    def expect(self, command_id: str) -> Reply:
        future: Reply = asyncio.get_running_loop().create_future()
        self._waiting[command_id] = future
        while len(self._waiting) > self._max_waiting:
            # The oldest waiter gives up as if its time had run out.
            _, oldest = self._waiting.popitem(last=False)
            if not oldest.done():
                oldest.set_result(None)
        return future

    @contextlib.contextmanager
    def expecting(self, command_id: str) -> Iterator[Reply]:
        """Waits for the reply to a command sent in the block; forgets it if the
        sending fails."""
        future = self.expect(command_id)
        try:
            yield future
        except BaseException:
            self.forget(command_id)
            raise

    def forget(self, command_id: str) -> None:
        self._waiting.pop(command_id, None)

    def fail(self, error: Exception) -> None:
        """Every waiter gets `error`: the replies can no longer be read."""
        waiting = list(self._waiting.values())
        self._waiting.clear()
        for future in waiting:
            if not future.done():
                future.set_exception(error)

    def resolve(self, result: ev.CommandResult) -> None:
        future = self._waiting.pop(result.command_id, None)
        if future is not None and not future.done():
            future.set_result(result)

    async def wait(self, command_id: str, future: Reply, timeout: float) -> ev.CommandResult | None:
        """The reply, or None if none came within `timeout` seconds."""
        try:
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(future, timeout)
            return None
        finally:
            self.forget(command_id)


class ReplyReader:
    """Reads every partition of a topic from its end (no consumer group to join)
    and resolves the waiting commands, from entering the block until leaving it.
    The positions are fixed on entering, so a reply cannot slip in before the read."""

    def __init__(self, bootstrap: str, topic: str, replies: Replies) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=50
        )
        self._topic = topic
        self._replies = replies
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ReplyReader:
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
            self._replies.fail(exc)

    def _resolve(self, raw: bytes | None) -> None:
        try:
            payload = decode(raw).payload
        except InvalidMessage:
            return
        if isinstance(payload, ev.CommandResult):
            self._replies.resolve(payload)
