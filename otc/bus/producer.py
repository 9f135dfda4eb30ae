"""Publishing enveloped messages to Kafka (at-least-once, `acks=all`), each with
the trace context of the work that sent it in its envelope and in its headers."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer
from google.protobuf.message import Message as ProtoMessage

from otc import tracing
from otc.bus.envelope import encode
from otc.clock import Clock, SystemClock
from otc.logging import get_logger

log = get_logger(__name__)


# aiokafka can wait for ever for metadata or acks when the broker is unreachable;
# every call here gives up after this long with a TimeoutError (transient: retried).
SEND_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0


class Publisher:
    def __init__(self, bootstrap: str, producer_name: str, clock: Clock | None = None) -> None:
        self.producer_name = producer_name
        self._clock = clock or SystemClock()
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            linger_ms=1,
            request_timeout_ms=10_000,
        )

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        try:
            await asyncio.wait_for(self._producer.stop(), STOP_TIMEOUT_S)
        except TimeoutError:
            log.warning("producer did not stop in time; abandoning unsent messages")

    async def publish(
        self,
        topic: str,
        key: str,
        payload: ProtoMessage,
        *,
        correlation_id: str,
        causation_id: str = "",
        event_id: str | None = None,
    ) -> str:
        context = tracing.carrier(correlation_id)
        event_id, raw = encode(
            payload,
            producer=self.producer_name,
            occurred_at=self._clock.now(),
            correlation_id=correlation_id,
            causation_id=causation_id,
            event_id=event_id,
            trace_context=context,
        )
        await self.send_raw(topic, key, raw, tracing.headers(context))
        return event_id

    async def send_raw(
        self,
        topic: str,
        key: str | bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        """Sends one record; with no `headers`, the current trace context's."""
        raw_key = key.encode() if isinstance(key, str) else key
        if headers is None:
            headers = tracing.headers(tracing.carrier())
        await asyncio.wait_for(
            self._producer.send_and_wait(topic, value=value, key=raw_key, headers=headers),
            SEND_TIMEOUT_S,
        )

    async def send_many(self, records: list[tuple[str, str, bytes]]) -> None:
        """Sends (topic, key, envelope) records, each with its envelope's trace
        context in its headers; returns when all are acknowledged."""

        async def send_all() -> None:
            futures = [
                await self._producer.send(
                    topic,
                    value=value,
                    key=key.encode(),
                    headers=tracing.envelope_headers(value),
                )
                for topic, key, value in records
            ]
            for future in futures:
                await future

        await asyncio.wait_for(send_all(), SEND_TIMEOUT_S)
