"""OpenTelemetry tracing: one RFQ is one trace, across every service.

The W3C trace context travels in each Kafka message (in the envelope, so that it
survives the outbox, and mirrored in the record's headers) and in gRPC metadata.
Work that starts with no span (an HTTP request, the deadline sweeper, a maker's
bot) joins the trace of its correlation id, derived from that id; so a trader's
accept, which arrives as a new request, lands in the trace of its RFQ.

Off by default (`OTC_OTEL_EXPORTER=none`): every function here is then a flag
check and nothing else.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import grpc
from google.protobuf.message import DecodeError
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from otc.contracts import envelope_pb2

Exporter = Literal["none", "console", "otlp"]

_PROPAGATOR = TraceContextTextMapPropagator()
FIELDS = frozenset(_PROPAGATOR.fields)  # traceparent, tracestate

_provider: TracerProvider | None = None
_tracer: trace.Tracer = trace.NoOpTracer()


def enabled() -> bool:
    return _provider is not None


def configure(service: str, exporter: Exporter, endpoint: str | None = None) -> None:
    """Turns tracing on for this process, unless `exporter` is "none"."""
    if exporter == "none":
        return
    # no exit hook: `shutdown` flushes within a bound instead, so that an unreachable
    # collector cannot hold a stopping process past its grace period
    provider = TracerProvider(
        resource=Resource.create({"service.name": service}), shutdown_on_exit=False
    )
    provider.add_span_processor(BatchSpanProcessor(_exporter(exporter, endpoint)))
    install(provider)


def _exporter(exporter: Exporter, endpoint: str | None) -> SpanExporter:
    if exporter == "console":
        return ConsoleSpanExporter()
    # imported here: the OTLP stack is only loaded by processes that export to it
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=endpoint)


def install(provider: TracerProvider | None) -> None:
    """Makes `provider` the source of this process's spans (None: tracing off).
    Kept apart from OpenTelemetry's global provider, which can be set only once."""
    global _provider, _tracer
    _provider = provider
    _tracer = provider.get_tracer("otc") if provider is not None else trace.NoOpTracer()


def shutdown(timeout_s: float = 2.0) -> None:
    """Exports the spans still buffered, for at most `timeout_s`; for the end of
    a process."""
    if _provider is not None:
        _provider.force_flush(int(timeout_s * 1000))
        install(None)


def _story(correlation_id: str) -> Context | None:
    """A remote parent for work that starts with no span: the same trace id for
    every piece of work with this correlation id."""
    if not correlation_id:
        return None
    digest = hashlib.sha256(correlation_id.encode()).digest()
    parent = SpanContext(
        trace_id=int.from_bytes(digest[:16], "big"),
        span_id=int.from_bytes(digest[16:24], "big"),
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    return trace.set_span_in_context(NonRecordingSpan(parent))


def carrier(correlation_id: str = "") -> dict[str, str]:
    """The trace context to send with a message: the current span's, or else the
    one of its correlation id."""
    if _provider is None:
        return {}
    current = trace.get_current_span().get_span_context()
    out: dict[str, str] = {}
    _PROPAGATOR.inject(out, context=None if current.is_valid else _story(correlation_id))
    return out


def headers(context: Mapping[str, str]) -> list[tuple[str, bytes]] | None:
    """Kafka record headers for a trace context (None when there is none)."""
    return [(k, v.encode()) for k, v in context.items()] or None


def envelope_headers(raw: bytes) -> list[tuple[str, bytes]] | None:
    """The headers of an already encoded envelope: its own trace context."""
    if _provider is None:
        return None
    envelope = envelope_pb2.Envelope()
    try:
        envelope.ParseFromString(raw)
    except DecodeError:  # not ours to judge: the consumer dead-letters it
        return None
    return headers(envelope.trace_context)


@contextmanager
def handling(
    service: str,
    topic: str,
    *,
    event_id: str,
    message_type: str,
    correlation_id: str,
    record_headers: Sequence[tuple[str, bytes]] | None,
    envelope_context: Mapping[str, str],
) -> Iterator[None]:
    """A consumer span around handling one message, parented on the context the
    message carries (its headers, else its envelope, else its correlation id)."""
    if _provider is None:
        yield
        return
    found = {k: v.decode() for k, v in record_headers or () if k in FIELDS} or dict(
        envelope_context
    )
    parent = _PROPAGATOR.extract(found) if found else _story(correlation_id)
    with _tracer.start_as_current_span(
        f"{topic} process",
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes={
            "messaging.system": "kafka",
            "messaging.destination.name": topic,
            "messaging.message.id": event_id,
            "messaging.consumer.group.name": service,
            "otc.message_type": message_type,
            "otc.correlation_id": correlation_id,
        },
    ):
        yield


@contextmanager
def span(name: str, **attributes: str) -> Iterator[None]:
    """A span of this process's own work, a child of the current one if any."""
    if _provider is None:
        yield
        return
    with _tracer.start_as_current_span(name, attributes=attributes):
        yield


def trace_ids(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: the current trace and span ids on the log line."""
    if _provider is not None:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            event["trace_id"] = format(context.trace_id, "032x")
            event["span_id"] = format(context.span_id, "016x")
    return event


def client_interceptors() -> list[grpc.aio.ClientInterceptor]:
    """Interceptors for a gRPC channel: none while tracing is off, which spares
    every call the cost of an interceptor chain."""
    return [ClientInterceptor()] if _provider is not None else []


def server_interceptors() -> list[grpc.aio.ServerInterceptor]:
    return [ServerInterceptor()] if _provider is not None else []


class ClientInterceptor(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Carries the current trace context in the metadata of every unary call."""

    async def intercept_unary_unary(
        self,
        continuation: Callable[[Any, Any], Awaitable[Any]],
        client_call_details: Any,
        request: Any,
    ) -> Any:
        if _provider is None:
            return await continuation(client_call_details, request)
        with _tracer.start_as_current_span(
            client_call_details.method.decode()
            if isinstance(client_call_details.method, bytes)
            else client_call_details.method,
            kind=SpanKind.CLIENT,
            attributes={"rpc.system": "grpc"},
        ) as current:
            context: dict[str, str] = {}
            _PROPAGATOR.inject(context)
            metadata = grpc.aio.Metadata(*(client_call_details.metadata or ()), *context.items())
            call = await continuation(client_call_details._replace(metadata=metadata), request)
            code = await call.code()
            current.set_attribute("rpc.grpc.status_code", code.value[0])
            return call


class ServerInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Runs every unary method in a server span parented on the caller's context."""

    async def intercept_service(
        self,
        continuation: Callable[[Any], Awaitable[Any]],
        handler_call_details: Any,
    ) -> Any:
        handler = await continuation(handler_call_details)
        if _provider is None or handler is None or handler.unary_unary is None:
            return handler
        found = {
            k: v
            for k, v in handler_call_details.invocation_metadata or ()
            if k in FIELDS and isinstance(v, str)
        }
        method: str = handler_call_details.method
        behaviour = handler.unary_unary

        async def traced(request: Any, context: grpc.aio.ServicerContext) -> Any:
            with _tracer.start_as_current_span(
                method,
                context=_PROPAGATOR.extract(found),
                kind=SpanKind.SERVER,
                attributes={"rpc.system": "grpc"},
            ):
                return await behaviour(request, context)

        return grpc.unary_unary_rpc_method_handler(
            traced,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
