"""The audit trail's hash chains, with no servers: the encoding every stored hash
depends on, each RFQ's chain of events and the leaf each event makes in the log."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from order_core.domain.audit import (
    GENESIS_HASH,
    AuditRecord,
    JsonValue,
    canonical_json,
    chain,
    chain_hash,
    leaf_hash,
    parse_utc_iso,
    utc_iso,
)

AT = datetime(2026, 11, 22, 12, 0, 0, 123456, tzinfo=UTC)


def record(n: int = 1, **changes: object) -> AuditRecord:
    base = AuditRecord(
        rfq_id=f"rfq-{n}",
        event_type="otc.v1.OrderStateChanged",
        occurred_at=AT + timedelta(seconds=n),
        producer="order-core",
        event_id=f"event-{n}",
        correlation_id=f"rfq-{n}",
        causation_id=f"cause-{n}",
        party="TRADER-A",
        payload={"state": "QUOTED", "version": str(n), "price": "101.25"},
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def of(rfq_id: str, n: int) -> AuditRecord:
    """The n-th record written, for the RFQ `rfq_id`."""
    return record(n, rfq_id=rfq_id, correlation_id=rfq_id)


def test_canonical_json_sorts_keys_drops_whitespace_and_writes_utf8() -> None:
    value: JsonValue = {"b": [1, True, None], "a": {"y": "é", "x": ""}}
    assert canonical_json(value) == '{"a":{"x":"","y":"é"},"b":[1,true,null]}'.encode()


def test_canonical_json_writes_decimals_as_strings_and_times_as_utc_microseconds() -> None:
    paris = timezone(timedelta(hours=1))
    value: JsonValue = {
        "price": Decimal("101.250"),
        "tiny": Decimal("1E-7"),
        "at": datetime(2026, 11, 22, 13, 0, tzinfo=paris),
    }
    assert canonical_json(value) == (
        b'{"at":"2026-11-22T12:00:00.000000Z","price":"101.250","tiny":"0.0000001"}'
    )


def test_canonical_json_does_not_depend_on_insertion_order() -> None:
    assert canonical_json({"a": 1, "b": 2}) == canonical_json({"b": 2, "a": 1})


@pytest.mark.parametrize(
    "value",
    [
        {"price": 1.5},
        {"at": datetime(2026, 11, 22, 12, 0)},  # noqa: DTZ001 - the naive time is the point
        {"price": Decimal("NaN")},
        {1: "a key that is not a string"},
    ],
)
def test_canonical_json_refuses_what_would_not_read_back_the_same(value: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        canonical_json(value)  # type: ignore[arg-type]


def test_chain_hash_is_sha256_of_the_previous_hash_and_the_canonical_row() -> None:
    rec = record(1, payload={"state": "RFQ_SENT", "price": Decimal("2.50")})
    row = (
        '{"causation_id":"cause-1","correlation_id":"rfq-1","event_id":"event-1",'
        '"event_type":"otc.v1.OrderStateChanged","occurred_at":"2026-11-22T12:00:01.123456Z",'
        '"party":"TRADER-A","payload":{"price":"2.50","state":"RFQ_SENT"},'
        '"producer":"order-core","rfq_id":"rfq-1","rfq_seq":7}'
    )
    expected = hashlib.sha256((GENESIS_HASH + row).encode()).hexdigest()
    assert chain_hash(GENESIS_HASH, 7, rec) == expected


@pytest.mark.parametrize(
    "change",
    [
        {"rfq_id": "rfq-other"},
        {"event_type": "otc.v1.QuoteRecorded"},
        {"occurred_at": AT + timedelta(seconds=1, microseconds=1)},
        {"producer": "someone-else"},
        {"event_id": "event-other"},
        {"correlation_id": "other"},
        {"causation_id": ""},
        {"party": "TRADER-B"},
        {"payload": {"state": "QUOTED", "version": "1", "price": "101.26"}},
        {"payload": {"state": "QUOTED", "version": "1"}},
    ],
)
def test_any_field_change_changes_the_hash(change: dict[str, object]) -> None:
    original = record(1)
    changed = dataclasses.replace(original, **change)  # type: ignore[arg-type]
    assert chain_hash(GENESIS_HASH, 1, changed) != chain_hash(GENESIS_HASH, 1, original)


def test_the_position_and_the_previous_hash_are_part_of_the_hash() -> None:
    rec = record(1)
    assert chain_hash(GENESIS_HASH, 2, rec) != chain_hash(GENESIS_HASH, 1, rec)
    assert chain_hash("1" * 64, 1, rec) != chain_hash(GENESIS_HASH, 1, rec)


def test_chain_links_each_rfqs_records_to_that_rfqs_previous_event() -> None:
    records = [of("rfq-a", 1), of("rfq-b", 2), of("rfq-a", 3), of("rfq-b", 4), of("rfq-a", 5)]
    rows = chain({}, records)
    assert [r.record for r in rows] == records
    assert [(r.record.rfq_id, r.rfq_seq) for r in rows] == [
        ("rfq-a", 1),
        ("rfq-b", 1),
        ("rfq-a", 2),
        ("rfq-b", 2),
        ("rfq-a", 3),
    ]
    a1, b1, a2, b2, a3 = rows
    assert a1.prev_hash == GENESIS_HASH
    assert b1.prev_hash == GENESIS_HASH
    # Each links to its own RFQ's last event, never to the one just before it.
    assert a2.prev_hash == a1.hash
    assert b2.prev_hash == b1.hash
    assert a3.prev_hash == a2.hash
    for row in rows:
        assert row.hash == chain_hash(row.prev_hash, row.rfq_seq, row.record)


def test_chain_continues_an_rfq_after_its_head_and_starts_one_that_has_none() -> None:
    head_hash = chain_hash(GENESIS_HASH, 4, of("rfq-a", 0))
    heads = {"rfq-a": (4, head_hash)}
    rows = chain(heads, [of("rfq-b", 1), of("rfq-a", 2), of("rfq-a", 3)])
    b1, a5, a6 = rows
    assert (b1.rfq_seq, b1.prev_hash) == (1, GENESIS_HASH)
    assert (a5.rfq_seq, a5.prev_hash) == (5, head_hash)
    assert (a6.rfq_seq, a6.prev_hash) == (6, a5.hash)
    assert a5.hash == chain_hash(head_hash, 5, of("rfq-a", 2))
    # The caller's heads stay as they were: they are the database's, not chain's.
    assert heads == {"rfq-a": (4, head_hash)}


def test_chaining_in_two_batches_gives_the_same_rows_as_in_one() -> None:
    records = [of("rfq-a", 1), of("rfq-b", 2), of("rfq-a", 3), of("rfq-b", 4)]
    whole = chain({}, records)
    first = chain({}, records[:2])
    heads = {r.record.rfq_id: (r.rfq_seq, r.hash) for r in first}
    assert [*first, *chain(heads, records[2:])] == whole


def test_chaining_nothing_gives_nothing() -> None:
    assert chain({"rfq-a": (3, "1" * 64)}, []) == []


@pytest.mark.parametrize(
    "chain_hash_hex", [GENESIS_HASH, "ab" * 32, chain_hash(GENESIS_HASH, 1, record())]
)
def test_the_leaf_hash_is_rfc_6962s_leaf_of_the_chain_hash_bytes(chain_hash_hex: str) -> None:
    expected = hashlib.sha256(b"\x00" + bytes.fromhex(chain_hash_hex)).hexdigest()
    assert leaf_hash(chain_hash_hex) == expected


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive
        max_value=datetime(2100, 1, 1),  # noqa: DTZ001
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
        ),
    )
)
def test_parse_utc_iso_reads_back_what_utc_iso_wrote(moment: datetime) -> None:
    text = utc_iso(moment)
    assert text.endswith("Z")
    parsed = parse_utc_iso(text)
    assert parsed == moment
    assert parsed.tzinfo is UTC
    assert utc_iso(parsed) == text


def test_utc_iso_writes_utc_with_microseconds() -> None:
    paris = timezone(timedelta(hours=1))
    assert utc_iso(datetime(2026, 11, 22, 13, 0, tzinfo=paris)) == "2026-11-22T12:00:00.000000Z"


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-22T12:00:00.000000",
        "2026-11-22T12:00:00.000000+00:00",
        # each would read as a moment whose utc_iso is another text
        "2026-12-05T09:00:00.000000+05:00Z",
        "2026-12-05Z",
        "2026-12-05T09:00Z",
        "2026-12-05T09:00:00Z",
        "20261205T090000.000000Z",
    ],
)
def test_parse_utc_iso_refuses_any_other_form_than_utc_isos(text: str) -> None:
    with pytest.raises(ValueError, match="ending in Z"):
        parse_utc_iso(text)


def test_utc_iso_refuses_a_naive_time() -> None:
    with pytest.raises(ValueError, match="naive"):
        utc_iso(datetime(2026, 11, 22, 12, 0))  # noqa: DTZ001 - the naive time is the point
