"""One RFQ is one trace: the trace context crosses Kafka (in the envelope and the
record's headers, and through the outbox) and gRPC (in metadata), on the real
broker, database and credit service, with spans kept in memory."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator, Iterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, SpanKind, Tracer, get_current_span
from sqlalchemy import MetaData, text
from sqlalchemy.ext.asyncio import AsyncEngine

from order_core.adapters.risk_client import RiskClient
from otc import tracing
from otc.bus.consumer import Consumer
from otc.bus.envelope import Message, decode, encode
from otc.bus.producer import Publisher
from otc.clock import SystemClock
from otc.contracts import events_pb2
from otc.ids import new_id
from otc.outbox import OutboxRelay, outbox_table, processed_events_table
from otc.settings import Settings
from otc.unit_of_work import OutboxTables, UnitOfWork
from risk_limits.bootstrap import build as build_risk
from stack.infra.processes import free_port
from stack.infra.provider import Endpoints
from tests.kafka_tap import KafkaTap

Handled = asyncio.Queue[tuple[str, SpanContext]]
RISK_RELEASE = "/risk_limits.v1.RiskLimits/Release"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    yield exporter
    tracing.install(None)


@pytest.fixture
def tracer(spans: InMemorySpanExporter) -> Tracer:
    assert tracing._provider is not None
    return tracing._provider.get_tracer("tests")


@pytest.fixture
async def topic(endpoints: Endpoints) -> str:
    """A topic of this test's own: nothing else reads or writes it."""
    name = f"tracing.test.{new_id()}"
    admin = AIOKafkaAdminClient(bootstrap_servers=endpoints.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    return name


@pytest.fixture
async def publisher(endpoints: Endpoints) -> AsyncIterator[Publisher]:
    pub = Publisher(endpoints.kafka_bootstrap, "tracing-test")
    await pub.start()
    yield pub
    await pub.stop()


@pytest.fixture
async def handled(
    endpoints: Endpoints, topic: str, publisher: Publisher, spans: InMemorySpanExporter
) -> AsyncIterator[Handled]:
    """The correlation id and span context of each message a consumer of `topic`
    handles, in order."""
    queue: Handled = asyncio.Queue()

    async def handler(_: str, message: Message) -> None:
        queue.put_nowait((message.correlation_id, get_current_span().get_span_context()))

    consumer = Consumer(
        service="tracing-test",
        bootstrap=endpoints.kafka_bootstrap,
        topics=(topic,),
        handler=handler,
        publisher=publisher,
        group_id=None,
    )
    await consumer.start()
    running = asyncio.create_task(consumer.run())
    yield queue
    await consumer.stop()
    await running
    await consumer.close()


def _tick() -> events_pb2.PriceTick:
    return events_pb2.PriceTick(instrument="TRACE-TEST", mid="1")


async def _next(handled: Handled) -> tuple[str, SpanContext]:
    return await asyncio.wait_for(handled.get(), 20)


def _only(spans: InMemorySpanExporter, kind: SpanKind, name: str) -> ReadableSpan:
    [span] = [s for s in spans.get_finished_spans() if s.kind is kind and s.name == name]
    return span


async def test_a_message_is_handled_in_the_span_it_was_published_from(
    tracer: Tracer,
    topic: str,
    publisher: Publisher,
    handled: Handled,
    spans: InMemorySpanExporter,
) -> None:
    with tracer.start_as_current_span("create rfq") as root:
        await publisher.publish(topic, "k", _tick(), correlation_id="rfq-traced")
    _, context = await _next(handled)

    assert context.trace_id == root.get_span_context().trace_id
    span = _only(spans, SpanKind.CONSUMER, f"{topic} process")
    assert span.parent is not None
    assert span.parent.span_id == root.get_span_context().span_id
    assert span.attributes is not None
    assert span.attributes["otc.correlation_id"] == "rfq-traced"


async def test_work_with_no_span_joins_the_trace_of_its_correlation_id(
    spans: InMemorySpanExporter, topic: str, publisher: Publisher, handled: Handled
) -> None:
    for correlation_id in ("rfq-story", "rfq-story", "rfq-other"):
        await publisher.publish(topic, "k", _tick(), correlation_id=correlation_id)
    contexts = [await _next(handled) for _ in range(3)]

    [(_, first), (_, second), (_, other)] = contexts
    assert first.trace_id == second.trace_id, "an accept lands in the trace of its RFQ"
    assert other.trace_id != first.trace_id
    assert first.span_id != second.span_id


async def test_the_trace_survives_the_outbox(
    tracer: Tracer,
    endpoints: Endpoints,
    engine: AsyncEngine,
    topic: str,
    publisher: Publisher,
    handled: Handled,
) -> None:
    schema = f"tracing_{new_id()[-12:]}"
    ddl = importlib.import_module("migrations.versions.0001_skeleton")._outbox_and_inbox(schema)
    async with engine.begin() as conn:
        await conn.execute(text(f"CREATE SCHEMA {schema}"))
        raw = await conn.get_raw_connection()
        await raw.driver_connection.execute(ddl)  # type: ignore[union-attr]
    metadata = MetaData(schema=schema)
    tables = OutboxTables(outbox_table(metadata), processed_events_table(metadata))

    with tracer.start_as_current_span("state change") as root:
        async with UnitOfWork(engine, tables, producer="tracing-test", clock=SystemClock()) as uow:
            uow.emit(topic, "k", _tick(), correlation_id="rfq-outboxed")
            await uow.commit()
    relay = OutboxRelay(
        engine=engine,
        outbox=tables.outbox,
        publisher=publisher,
        service="tracing-test",
        database_url=endpoints.database_url,
    )
    async with KafkaTap(endpoints.kafka_bootstrap, topic) as tap:
        assert await relay.publish_batch() == 1  # later, outside the span, as the relay does
        [seen] = await tap.wait_for(lambda s: s.message is not None)
    _, context = await _next(handled)

    assert context.trace_id == root.get_span_context().trace_id
    assert seen.message is not None
    traceparent = seen.message.trace_context["traceparent"]
    assert seen.headers["traceparent"].decode() == traceparent, "mirrored in the headers"
    assert f"{root.get_span_context().trace_id:032x}" in traceparent


async def test_a_grpc_call_carries_the_trace_to_the_credit_service(
    tracer: Tracer, endpoints: Endpoints, spans: InMemorySpanExporter
) -> None:
    port = free_port()
    settings = Settings(
        env="test",
        database_url=endpoints.database_url,
        kafka_bootstrap=endpoints.kafka_bootstrap,
        risk_grpc_port=port,
    )
    risk = build_risk(settings, group_id=None)  # after tracing is on, as `serve` does
    await risk.start()
    running = asyncio.create_task(risk.run())
    client = RiskClient(f"127.0.0.1:{port}", timeout_s=10)
    try:
        with tracer.start_as_current_span("accept") as root:
            await client.release(new_id(), "tracing test")
    finally:
        await client.close()
        await risk.stop()
        await running
        await risk.close()

    call = _only(spans, SpanKind.CLIENT, RISK_RELEASE)
    served = _only(spans, SpanKind.SERVER, RISK_RELEASE)
    assert call.parent is not None
    assert served.parent is not None
    assert call.parent.span_id == root.get_span_context().span_id
    assert served.parent.span_id == call.context.span_id
    assert served.context.trace_id == root.get_span_context().trace_id


def test_off_by_default_nothing_is_carried() -> None:
    assert not tracing.enabled()
    _, raw = encode(
        _tick(), producer="tracing-test", occurred_at=SystemClock().now(), correlation_id="rfq-x"
    )
    assert decode(raw).trace_context == {}
    assert tracing.envelope_headers(raw) is None
    assert tracing.client_interceptors() == []
