"""The audit read side's pure parts, with no servers: cursors, filters and the
rendering of an export."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pytest

from order_core.service_layer.audit_queries import (
    FIELDS,
    AuditEvent,
    AuditFilter,
    ExportFormat,
    decode_cursor,
    encode_cursor,
    render,
)
from otc.errors import ValidationFailed


def event(seq: int, payload: dict[str, object]) -> AuditEvent:
    return {
        "seq": seq,
        "rfq_id": f"rfq-{seq}",
        "event_type": "otc.v1.OrderStateChanged",
        "occurred_at": "2026-11-22T12:00:00.123456Z",
        "producer": "order-core",
        "event_id": f"ev-{seq}",
        "correlation_id": "c",
        "causation_id": "",
        "party": "TRADER-A",
        "payload": payload,  # type: ignore[dict-item]
        "prev_hash": "0" * 64,
        "hash": "f" * 64,
    }


# commas, quotes, line breaks and non-ASCII: what naive CSV writing gets wrong
AWKWARD = {"reason": 'said "no", then\r\nleft', "tags": ["é", "a,b"], "n": 3}


@pytest.mark.parametrize("seq", [0, 1, 42, 2**62])
def test_a_cursor_reads_back_as_the_seq_it_was_made_from(seq: int) -> None:
    assert decode_cursor(encode_cursor(seq)) == seq


@pytest.mark.parametrize(
    "cursor", ["", "42", "not base64!", encode_cursor(1)[:-1] + "*", "c2VxOi0x"]
)
def test_a_cursor_the_api_did_not_hand_out_is_refused(cursor: str) -> None:
    with pytest.raises(ValidationFailed, match="cursor"):
        decode_cursor(cursor)


@pytest.mark.parametrize("name", ["since", "until"])
def test_a_time_bound_without_an_offset_is_refused(name: str) -> None:
    naive = datetime(2026, 1, 31)  # noqa: DTZ001
    with pytest.raises(ValidationFailed, match=name):
        AuditFilter(**{name: naive})  # type: ignore[arg-type]
    AuditFilter(**{name: naive.replace(tzinfo=UTC)})  # type: ignore[arg-type]


def test_jsonl_is_one_event_per_line_that_parses_back() -> None:
    events = [event(1, AWKWARD), event(2, {})]
    text = render(events, ExportFormat.JSONL)
    lines = text.split("\n")
    assert lines[-1] == ""
    assert [json.loads(line) for line in lines[:-1]] == events


def test_csv_has_one_column_per_field_and_the_payload_as_json() -> None:
    events = [event(1, AWKWARD), event(2, {})]
    text = render(events[:1], ExportFormat.CSV, header=True) + render(events[1:], ExportFormat.CSV)
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert tuple(rows[0]) == FIELDS
    parsed = [
        {**row, "seq": int(row["seq"]), "payload": json.loads(row["payload"])} for row in rows
    ]
    assert parsed == events


def test_an_empty_csv_is_its_header() -> None:
    assert render([], ExportFormat.CSV, header=True) == ",".join(FIELDS) + "\r\n"
