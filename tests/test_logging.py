"""In JSON mode every line a handler logs, ours or a library's, is one JSON object
carrying the correlation id of the message being handled."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import structlog
from aiokafka.structs import ConsumerRecord

from otc.bus.consumer import Consumer, Handler
from otc.bus.envelope import Message, encode
from otc.bus.producer import Publisher
from otc.clock import SystemClock
from otc.contracts import events_pb2
from otc.logging import configure, get_logger

UNREACHABLE = "127.0.0.1:9"  # nothing here connects: the record is handed over directly


@pytest.fixture
def stderr(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """What JSON logging writes to stderr; the session's logging is put back after."""
    buffer = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buffer)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure("logging-test", fmt="json")
    yield buffer
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    root.handlers[:] = handlers
    root.setLevel(level)


def _record(correlation_id: str) -> ConsumerRecord[bytes, bytes]:
    _, raw = encode(
        events_pb2.PriceTick(instrument="LOG-TEST", mid="1"),
        producer="logging-test",
        occurred_at=SystemClock().now(),
        correlation_id=correlation_id,
    )
    return ConsumerRecord(
        topic="market.prices",
        partition=0,
        offset=7,
        timestamp=0,
        timestamp_type=0,
        key=b"LOG-TEST",
        value=raw,
        checksum=None,
        serialized_key_size=8,
        serialized_value_size=len(raw),
        headers=[],
    )


def _lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@asynccontextmanager
async def _consumer(handler: Handler) -> AsyncIterator[Consumer]:
    """A consumer never started: records are handed to it directly."""
    publisher = Publisher(UNREACHABLE, "logging-test")
    consumer = Consumer(
        service="logging-test",
        bootstrap=UNREACHABLE,
        topics=("market.prices",),
        handler=handler,
        publisher=publisher,
        group_id=None,
    )
    try:
        yield consumer
    finally:
        await consumer.close()
        await publisher.stop()


async def test_a_handlers_lines_are_json_with_the_correlation_id(stderr: io.StringIO) -> None:
    async def handler(topic: str, message: Message) -> None:
        get_logger("a.handler").info("handling", topic=topic)
        logging.getLogger("a.library").warning("a library speaks about %s", message.type)

    async with _consumer(handler) as consumer:
        await consumer._handle_record(_record("rfq-logged"))

    lines = _lines(stderr.getvalue())  # json.loads fails on any line that is not JSON
    assert [line["event"] for line in lines] == [
        "handling",
        "a library speaks about otc.v1.PriceTick",
    ]
    for line in lines:
        assert line["correlation_id"] == "rfq-logged"
        assert line["service"] == "logging-test"
        assert line["topic"] == "market.prices"


async def test_the_correlation_id_goes_when_the_message_is_handled(stderr: io.StringIO) -> None:
    async def handler(topic: str, message: Message) -> None:
        return None

    async with _consumer(handler) as consumer:
        await consumer._handle_record(_record("rfq-before"))
    stderr.truncate(0)
    stderr.seek(0)
    get_logger("after").info("between messages")
    [line] = _lines(stderr.getvalue())
    assert "correlation_id" not in line
    assert line["service"] == "logging-test"
