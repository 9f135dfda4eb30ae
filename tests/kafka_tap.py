"""A test's window on Kafka: reads topics from their current end (manual partition
assignment, so no consumer-group join) and waits for matching messages."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from otc.bus.envelope import InvalidMessage, Message, decode


@dataclass(frozen=True)
class Seen:
    topic: str
    key: str | None
    raw: bytes | None
    headers: dict[str, bytes]
    message: Message | None  # None when the bytes are not a valid envelope


class KafkaTap:
    def __init__(self, bootstrap: str, *topics: str) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=20
        )
        self._topics = topics
        self.seen: list[Seen] = []
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def __aenter__(self) -> KafkaTap:
        await self._consumer.start()
        await self._consumer.topics()
        parts = [
            TopicPartition(t, p)
            for t in self._topics
            for p in sorted(self._consumer.partitions_for_topic(t) or ())
        ]
        self._consumer.assign(parts)
        await self._consumer.seek_to_end(*parts)
        for tp in parts:  # resolve positions now, so nothing published later is missed
            await self._consumer.position(tp)
        self._task = asyncio.create_task(self._pump())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
        await self._consumer.stop()

    async def _pump(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=100)
            for records in batches.values():
                for r in records:
                    try:
                        message: Message | None = decode(r.value)
                    except InvalidMessage:
                        message = None
                    self.seen.append(
                        Seen(
                            r.topic,
                            r.key.decode() if r.key else None,
                            r.value,
                            dict(r.headers or ()),
                            message,
                        )
                    )
            if batches:
                self._changed.set()

    async def wait_for(
        self, predicate: Callable[[Seen], bool], *, count: int = 1, timeout: float = 20.0
    ) -> list[Seen]:
        deadline = time.monotonic() + timeout
        while True:
            matches = [s for s in self.seen if predicate(s)]
            if len(matches) >= count:
                return matches
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"saw {len(matches)} of {count} expected messages")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.5))

    def payloads(self, type_name: str) -> list[Message]:
        return [
            s.message for s in self.seen if s.message is not None and s.message.type == type_name
        ]
