"""What a consumer does with one record: decode it, handle it in a trace span
parented on the context it carries, retry a transient failure with backoff until it
succeeds and any other a few times, and dead-letter what cannot be decoded, fails
validation or keeps failing: to `<topic>.dlq`, with the reason in a header.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiokafka import ConsumerRecord

from otc import tracing
from otc.bus.envelope import InvalidMessage, Message, decode
from otc.bus.producer import Publisher
from otc.bus.topics import dlq
from otc.errors import DomainError, is_transient
from otc.logging import correlation, get_logger
from otc.metrics import DLQ_MESSAGES, HANDLER_SECONDS, MESSAGES_CONSUMED

Handler = Callable[[str, Message], Awaitable[None]]

log = get_logger(__name__)


class RecordHandler:
    """Hands each record's message to `handler`; never raises for a bad message."""

    def __init__(
        self, *, service: str, handler: Handler, publisher: Publisher, max_attempts: int
    ) -> None:
        self.service = service
        self._handler = handler
        self._publisher = publisher
        self._max_attempts = max_attempts

    async def __call__(self, record: ConsumerRecord) -> None:
        topic = record.topic
        started = time.perf_counter()
        try:
            message = decode(record.value)
        except InvalidMessage as exc:
            await self.dead_letter(record, str(exc))
            return
        with (
            correlation(message.correlation_id, event_id=message.event_id, topic=topic),
            tracing.handling(
                self.service,
                topic,
                event_id=message.event_id,
                message_type=message.type,
                correlation_id=message.correlation_id,
                record_headers=record.headers,
                envelope_context=message.trace_context,
            ),
        ):
            attempt = 0
            while True:
                attempt += 1
                try:
                    await self._handler(topic, message)
                except (InvalidMessage, DomainError) as exc:
                    await self.dead_letter(record, f"{type(exc).__name__}: {exc}")
                    return
                except Exception as exc:
                    transient = is_transient(exc)
                    if not transient and attempt >= self._max_attempts:
                        log.exception("handler failed; dead-lettering", attempts=attempt)
                        await self.dead_letter(record, f"{type(exc).__name__}: {exc}")
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

    async def dead_letter(self, record: ConsumerRecord, reason: str) -> None:
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
