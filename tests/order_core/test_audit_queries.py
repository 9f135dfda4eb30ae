"""The audit read side's pure parts, with no servers: cursors, filters and the
rendering of an export."""

from __future__ import annotations

import base64
import csv
import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from order_core.adapters.audit_queries import FIELDS, AuditEvent, AuditFilter
from order_core.service_layer.audit_queries import (
    ExportFormat,
    decode_cursor,
    encode_cursor,
    render,
)
from otc.errors import ValidationFailed


def event(log_index: int | None, payload: dict[str, object], rfq_seq: int = 1) -> AuditEvent:
    name = "pending" if log_index is None else str(log_index)
    return {
        "log_index": log_index,
        "rfq_id": f"rfq-{name}",
        "rfq_seq": rfq_seq,
        "event_type": "otc.v1.OrderStateChanged",
        "occurred_at": "2026-11-22T12:00:00.123456Z",
        "producer": "order-core",
        "event_id": f"ev-{name}",
        "correlation_id": "c",
        "causation_id": "",
        "party": "TRADER-A",
        "payload": payload,  # type: ignore[dict-item]
        "prev_hash": "0" * 64,
        "hash": "f" * 64,
        "leaf_hash": "e" * 64,
    }


def parsed_csv(text: str) -> list[dict[str, Any]]:
    """The rows with the numbers read back as numbers: an empty log index is None."""
    return [
        {
            **row,
            "log_index": int(row["log_index"]) if row["log_index"] else None,
            "rfq_seq": int(row["rfq_seq"]),
            "payload": json.loads(row["payload"]),
        }
        for row in csv.DictReader(io.StringIO(text, newline=""))
    ]


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


# commas, quotes, line breaks and non-ASCII: what naive CSV writing gets wrong
AWKWARD = {"reason": 'said "no", then\r\nleft', "tags": ["é", "a,b"], "n": 3}


@pytest.mark.parametrize("log_index", [0, 1, 42, 2**62])
def test_a_cursor_reads_back_as_the_log_index_it_was_made_from(log_index: int) -> None:
    assert decode_cursor(encode_cursor(log_index)) == log_index


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "42",
        "not base64!",
        encode_cursor(1)[:-1] + "*",
        _b64("log:-1"),
        # a cursor of the single chain's API, over seq: it means nothing in the log
        _b64("seq:1"),
    ],
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
    events = [event(1, AWKWARD), event(2, {}, rfq_seq=2), event(None, {})]
    text = render(events, ExportFormat.JSONL)
    lines = text.split("\n")
    assert lines[-1] == ""
    assert [json.loads(line) for line in lines[:-1]] == events
    assert '"log_index":null' in lines[2]


def test_csv_has_one_column_per_field_and_the_payload_as_json() -> None:
    events = [event(1, AWKWARD), event(2, {}, rfq_seq=2)]
    text = render(events[:1], ExportFormat.CSV, header=True) + render(events[1:], ExportFormat.CSV)
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert tuple(rows[0]) == FIELDS
    assert parsed_csv(text) == events


def test_an_event_not_yet_in_the_log_has_an_empty_log_index_cell() -> None:
    text = render([event(None, {"n": 1})], ExportFormat.CSV, header=True)
    [row] = list(csv.reader(io.StringIO(text, newline="")))[1:]
    assert row[FIELDS.index("log_index")] == ""  # not "None", not "null"
    assert parsed_csv(text) == [event(None, {"n": 1})]


def test_an_empty_csv_is_its_header() -> None:
    assert render([], ExportFormat.CSV, header=True) == ",".join(FIELDS) + "\r\n"
