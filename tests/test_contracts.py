"""Wire contracts: generated code in step with proto/, and a strict envelope."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from otc.bus.envelope import InvalidMessage, decode, encode
from otc.contracts import envelope_pb2, events_pb2
from stack.codegen import stale_files


def test_committed_generated_code_matches_the_proto_files() -> None:
    stale = stale_files()
    assert stale == [], f"run `make proto`: stale generated files {stale}"


def test_an_envelope_round_trips_with_its_payload() -> None:
    payload = events_pb2.PriceTick(instrument="BTC-USD", mid="65000.50")
    at = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    event_id, raw = encode(payload, producer="test", occurred_at=at, correlation_id="c-1")
    message = decode(raw)
    assert message.event_id == event_id
    assert message.payload == payload
    assert message.occurred_at == at
    assert message.correlation_id == "c-1"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\xff\xff\xff not protobuf",
        envelope_pb2.Envelope(event_id="e", type="otc.v1.Nope").SerializeToString(),
        envelope_pb2.Envelope(type="otc.v1.PriceTick").SerializeToString(),
        envelope_pb2.Envelope(
            event_id="e", type="otc.v1.PriceTick", payload=b"\xff\xff"
        ).SerializeToString(),
    ],
    ids=["empty", "garbage", "unknown-type", "no-event-id", "bad-payload"],
)
def test_undecodable_messages_are_refused_as_invalid(raw: bytes) -> None:
    with pytest.raises(InvalidMessage):
        decode(raw)
