"""The audit trail's hash chain, with no servers: the encoding every stored hash
depends on, and the verifier naming the first row that does not hold."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from order_core.domain.audit import (
    GENESIS_HASH,
    AuditRecord,
    ChainedRecord,
    ChainVerifier,
    JsonValue,
    canonical_json,
    chain,
    chain_hash,
    verify,
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


def a_chain(length: int = 6) -> list[ChainedRecord]:
    return chain(0, GENESIS_HASH, [record(n) for n in range(1, length + 1)])


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
        '"producer":"order-core","rfq_id":"rfq-1","seq":7}'
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


def test_chain_links_each_row_to_the_one_before() -> None:
    rows = a_chain(3)
    assert [r.seq for r in rows] == [1, 2, 3]
    assert rows[0].prev_hash == GENESIS_HASH
    assert [r.prev_hash for r in rows[1:]] == [r.hash for r in rows[:-1]]
    more = chain(rows[-1].seq, rows[-1].hash, [record(4)])
    assert verify([*rows, *more]) is None


def test_an_intact_chain_verifies() -> None:
    assert verify(a_chain()) is None
    assert verify([]) is None


def test_verify_names_the_row_whose_payload_changed() -> None:
    rows = a_chain()
    rows[2] = dataclasses.replace(
        rows[2], record=dataclasses.replace(rows[2].record, payload={"state": "CANCELLED"})
    )
    assert verify(rows) == 3


def test_verify_names_the_row_after_a_deleted_one_and_says_what_is_missing() -> None:
    rows = a_chain()
    del rows[2]
    assert verify(rows) == 4
    verifier = ChainVerifier()
    broken = next(b for b in map(verifier.check, rows) if b is not None)
    assert broken.reason == "follows seq 2: seq 3 missing"


def test_verify_names_the_first_of_two_rows_whose_contents_were_swapped() -> None:
    rows = a_chain()
    # What the table shows when two rows swap everything but their primary key.
    third, fourth = rows[2], rows[3]
    rows[2] = dataclasses.replace(fourth, seq=3)
    rows[3] = dataclasses.replace(third, seq=4)
    assert verify(rows) == 3


def test_verify_names_the_first_row_out_of_order() -> None:
    rows = a_chain()
    rows[2], rows[3] = rows[3], rows[2]
    assert verify(rows) == 4


def test_a_row_rehashed_after_its_change_is_caught_by_the_next_row() -> None:
    rows = a_chain()
    forged = dataclasses.replace(rows[2].record, party="TRADER-B")
    rows[2] = dataclasses.replace(
        rows[2], record=forged, hash=chain_hash(rows[2].prev_hash, 3, forged)
    )
    assert verify(rows) == 4


def test_the_head_reveals_rows_cut_off_the_end() -> None:
    rows = a_chain()
    verifier = ChainVerifier()
    for row in rows[:-2]:
        assert verifier.check(row) is None
    broken = verifier.check_head(rows[-1].seq, rows[-1].hash)
    assert broken is not None
    assert broken.seq == 5
    assert "head is at seq 6" in broken.reason


def test_the_head_must_carry_the_last_rows_hash() -> None:
    verifier = ChainVerifier()
    for row in a_chain():
        assert verifier.check(row) is None
    assert verifier.check_head(6, verifier.last_hash) is None
    broken = verifier.check_head(6, "f" * 64)
    assert broken is not None
    assert broken.seq == 6
