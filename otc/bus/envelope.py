"""Encoding and decoding of the envelope every Kafka message travels in.

`decode` is strict: unknown types, bad bytes and missing ids raise `InvalidMessage`,
which consumers route to the topic's dead-letter queue instead of crashing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from google.protobuf.message import DecodeError
from google.protobuf.message import Message as ProtoMessage

from otc import tracing
from otc.contracts import envelope_pb2, events_pb2
from otc.ids import new_id


class InvalidMessage(ValueError):
    """A message that can never be handled: it goes to the dead-letter topic."""


PAYLOAD_TYPES: dict[str, type[ProtoMessage]] = {
    descriptor.full_name: getattr(events_pb2, name)
    for name, descriptor in events_pb2.DESCRIPTOR.message_types_by_name.items()
}


@dataclass(frozen=True, slots=True)
class Message:
    event_id: str
    type: str
    occurred_at: datetime
    producer: str
    correlation_id: str
    causation_id: str
    payload: ProtoMessage
    trace_context: Mapping[str, str] = field(default_factory=dict)


def type_name(payload: ProtoMessage) -> str:
    return str(payload.DESCRIPTOR.full_name)


def encode(
    payload: ProtoMessage,
    *,
    producer: str,
    occurred_at: datetime,
    correlation_id: str,
    causation_id: str = "",
    event_id: str | None = None,
    trace_context: Mapping[str, str] | None = None,
) -> tuple[str, bytes]:
    """Returns (event_id, bytes); the id is fixed here so a re-publish is a duplicate.
    The trace context is the current one unless given."""
    if type_name(payload) not in PAYLOAD_TYPES:
        raise ValueError(f"{type_name(payload)} is not a registered event payload")
    envelope = envelope_pb2.Envelope(
        event_id=event_id or new_id(),
        type=type_name(payload),
        producer=producer,
        correlation_id=correlation_id,
        causation_id=causation_id,
        payload=payload.SerializeToString(),
        trace_context=tracing.carrier(correlation_id) if trace_context is None else trace_context,
    )
    envelope.occurred_at.FromDatetime(occurred_at)
    return envelope.event_id, envelope.SerializeToString()


def decode(raw: bytes | None) -> Message:
    if not raw:
        raise InvalidMessage("empty message")
    envelope = envelope_pb2.Envelope()
    try:
        envelope.ParseFromString(raw)
    except DecodeError as exc:
        raise InvalidMessage(f"not an envelope: {exc}") from None
    if not envelope.event_id:
        raise InvalidMessage("envelope has no event_id")
    payload_type = PAYLOAD_TYPES.get(envelope.type)
    if payload_type is None:
        raise InvalidMessage(f"unknown payload type {envelope.type!r}")
    payload = payload_type()
    try:
        payload.ParseFromString(envelope.payload)
    except DecodeError as exc:
        raise InvalidMessage(f"payload is not a valid {envelope.type}: {exc}") from None
    return Message(
        event_id=envelope.event_id,
        type=envelope.type,
        occurred_at=envelope.occurred_at.ToDatetime(tzinfo=UTC),
        producer=envelope.producer,
        correlation_id=envelope.correlation_id,
        causation_id=envelope.causation_id,
        payload=payload,
        trace_context=dict(envelope.trace_context),
    )
