"""The whole audit trail's verification, with no servers: RFQs' chains interleaved in
one Merkle log under signed checkpoints, and every kind of tampering named by the
first event or checkpoint that no longer holds; and events read back from an export."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from order_core.domain import merkle
from order_core.domain.audit import (
    AuditRecord,
    ChainedRecord,
    LoggedEvent,
    chain,
    chain_hash,
    leaf_hash,
    plain_json,
    utc_iso,
)
from order_core.domain.checkpoints import Checkpoint, CheckpointSigner
from order_core.domain.trail_verifier import Finding, TrailVerifier, Verdict, exported_event

START = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
SIGNER = CheckpointSigner.generate()
OTHER = CheckpointSigner.generate()

# The RFQ of each event in log order; per RFQ the events are, by log index,
# a: 0 1 5 9, b: 2 4 7, c: 3 6 8.
ORDER = "aabcbacbca"
SIZES = (3, 7, 10)


def records(order: str = ORDER) -> list[AuditRecord]:
    return [
        AuditRecord(
            rfq_id=f"rfq-{letter}",
            event_type="otc.v1.OrderStateChanged",
            occurred_at=START + timedelta(seconds=i),
            producer="order-core",
            event_id=f"event-{i}",
            correlation_id=f"rfq-{letter}",
            causation_id=f"cause-{i}",
            party="TRADER-A",
            payload={"state": "QUOTED", "price": Decimal("101.25"), "version": i},
        )
        for i, letter in enumerate(order)
    ]


def logged(rows: Sequence[ChainedRecord], integrated: int | None = None) -> list[LoggedEvent]:
    """The rows as the log holds them, the first `integrated` (all by default) with
    log indexes and the rest not yet sequenced."""
    count = len(rows) if integrated is None else integrated
    return [
        LoggedEvent(i if i < count else None, row, leaf_hash(row.hash))
        for i, row in enumerate(rows)
    ]


def leaves(events: Iterable[LoggedEvent]) -> list[bytes]:
    return [bytes.fromhex(e.leaf_hash) for e in events if e.log_index is not None]


def signed(
    events: Sequence[LoggedEvent], sizes: Iterable[int], signer: CheckpointSigner = SIGNER
) -> list[Checkpoint]:
    """Checkpoints as the sequencer signs them: over its frontier's root as it grows."""
    wanted, frontier, checkpoints = set(sizes), merkle.Frontier(), []
    for leaf in leaves(events):
        frontier.append(leaf)
        if frontier.size in wanted:
            at = START + timedelta(minutes=frontier.size)
            checkpoints.append(signer.sign(frontier.size, frontier.root().hex(), at))
    return checkpoints


def a_trail() -> tuple[list[LoggedEvent], list[Checkpoint]]:
    events = logged(chain({}, records()))
    return events, signed(events, SIZES)


def verify(
    events: Iterable[LoggedEvent],
    checkpoints: Iterable[Checkpoint],
    public_key: Ed25519PublicKey | None = SIGNER.public_key,
) -> Verdict:
    verifier = TrailVerifier(checkpoints, public_key)
    for event in events:
        verifier.check(event)
    return verifier.finish()


def finding(verdict: Verdict) -> Finding:
    assert not verdict.ok
    assert verdict.finding is not None
    return verdict.finding


def where(found: Finding) -> tuple[str, int | None, str | None, int | None, int | None]:
    """What a finding names, but for its reason's wording."""
    return found.kind, found.log_index, found.rfq_id, found.rfq_seq, found.tree_size


def changed(event: LoggedEvent, **changes: object) -> LoggedEvent:
    """The event with its record's fields changed and its stored hashes kept."""
    record = dataclasses.replace(event.chained.record, **changes)  # type: ignore[arg-type]
    return dataclasses.replace(event, chained=dataclasses.replace(event.chained, record=record))


def rehashed(event: LoggedEvent, **changes: object) -> LoggedEvent:
    """The event changed as someone with write access would: hash and leaf to match."""
    row = changed(event, **changes).chained
    row = dataclasses.replace(row, hash=chain_hash(row.prev_hash, row.rfq_seq, row.record))
    return dataclasses.replace(event, chained=row, leaf_hash=leaf_hash(row.hash))


def test_the_trail_is_interleaved_as_the_tests_expect() -> None:
    # The tests below name events by position; this pins the positions.
    events, checkpoints = a_trail()
    assert [(e.chained.record.rfq_id, e.chained.rfq_seq) for e in events] == [
        ("rfq-a", 1),
        ("rfq-a", 2),
        ("rfq-b", 1),
        ("rfq-c", 1),
        ("rfq-b", 2),
        ("rfq-a", 3),
        ("rfq-c", 2),
        ("rfq-b", 3),
        ("rfq-c", 3),
        ("rfq-a", 4),
    ]
    assert [c.tree_size for c in checkpoints] == [3, 7, 10]


def test_an_intact_trail_holds() -> None:
    events, checkpoints = a_trail()
    verdict = verify(events, checkpoints)
    assert verdict.ok
    assert verdict == Verdict(
        events=10,
        integrated=10,
        tree_size=10,
        root_hash=merkle.root(leaves(events)).hex(),
        checkpoints=3,
        signed_size=10,
        finding=None,
    )
    assert verdict.root_hash == checkpoints[-1].root_hash


def test_an_empty_trail_holds() -> None:
    verdict = verify([], [])
    assert verdict == Verdict(0, 0, 0, merkle.EMPTY_ROOT.hex(), 0, 0, None)
    assert verdict.ok


def test_events_not_yet_in_the_log_are_checked_by_their_chains_only() -> None:
    events = logged(chain({}, records()), integrated=7)
    checkpoints = signed(events, (3, 7))
    verdict = verify(events, checkpoints)
    assert verdict == Verdict(
        events=10,
        integrated=7,
        tree_size=7,
        root_hash=merkle.root(leaves(events[:7])).hex(),
        checkpoints=2,
        signed_size=7,
        finding=None,
    )
    # Their chains still hold them: a changed payload is named with no log index.
    events[8] = changed(events[8], payload={"state": "CANCELLED"})
    found = finding(verify(events, checkpoints))
    assert where(found) == ("event", None, "rfq-c", 3, None)
    assert "content was changed" in found.reason


def test_a_changed_payload_is_named() -> None:
    events, checkpoints = a_trail()
    events[4] = changed(events[4], payload={"state": "QUOTED", "price": "99.00", "version": 4})
    verdict = verify(events, checkpoints)
    found = finding(verdict)
    assert where(found) == ("event", 4, "rfq-b", 2, None)
    assert "content was changed" in found.reason
    assert (verdict.events, verdict.integrated, verdict.checkpoints) == (4, 4, 1)


def test_an_event_deleted_from_the_log_is_named_by_the_hole_it_leaves() -> None:
    events, checkpoints = a_trail()
    del events[5]
    found = finding(verify(events, checkpoints))
    assert (found.kind, found.log_index) == ("event", 5)
    assert "log index 5 missing" in found.reason


def test_a_repeated_log_index_is_named() -> None:
    events, checkpoints = a_trail()
    events.insert(3, events[2])
    found = finding(verify(events, checkpoints))
    assert (found.kind, found.log_index) == ("event", 2)
    assert "log index 2 again" in found.reason


def test_two_events_of_one_rfq_swapped_in_the_log_break_its_chain() -> None:
    events, checkpoints = a_trail()
    # What the log shows when two rows swap everything but their log index.
    events[0], events[1] = (
        dataclasses.replace(events[1], log_index=0),
        dataclasses.replace(events[0], log_index=1),
    )
    found = finding(verify(events, checkpoints))
    assert where(found) == ("event", 0, "rfq-a", 2, None)
    assert "event 1 missing" in found.reason


def test_two_events_of_different_rfqs_swapped_in_the_log_break_the_signed_root() -> None:
    events, checkpoints = a_trail()
    # Both chains still hold; only the order of the leaves under the root changed.
    events[4], events[5] = (
        dataclasses.replace(events[5], log_index=4),
        dataclasses.replace(events[4], log_index=5),
    )
    verdict = verify(events, checkpoints)
    found = finding(verdict)
    assert where(found) == ("checkpoint", None, None, None, 7)
    assert checkpoints[1].root_hash in found.reason
    assert verdict.checkpoints == 1


def test_two_logged_events_read_out_of_order_are_named() -> None:
    events, checkpoints = a_trail()
    events[4], events[5] = events[5], events[4]
    found = finding(verify(events, checkpoints))
    assert (found.kind, found.log_index) == ("event", 4)
    assert "log index 4 missing" in found.reason


def test_an_event_with_a_log_index_after_events_not_in_the_log_is_named() -> None:
    events = logged(chain({}, records()), integrated=7)
    events[6], events[7] = events[7], events[6]
    found = finding(verify(events, signed(events, (3,))))
    assert (found.kind, found.log_index, found.rfq_id) == ("event", 6, "rfq-c")
    assert "after events not in the log" in found.reason


def test_a_gap_in_an_rfqs_chain_is_named() -> None:
    events, checkpoints = a_trail()
    # RFQ a's first event gone and the log renumbered over the hole.
    events = [dataclasses.replace(e, log_index=i) for i, e in enumerate(events[1:])]
    found = finding(verify(events, checkpoints))
    assert where(found) == ("event", 0, "rfq-a", 2, None)
    assert "event 1 missing" in found.reason


def test_a_rewritten_prev_hash_is_named() -> None:
    events, checkpoints = a_trail()
    row = dataclasses.replace(events[4].chained, prev_hash="f" * 64)
    events[4] = dataclasses.replace(events[4], chained=row)
    found = finding(verify(events, checkpoints))
    assert where(found) == ("event", 4, "rfq-b", 2, None)
    assert "prev_hash" in found.reason


def test_an_event_rehashed_after_its_change_is_caught_by_its_rfqs_next_event() -> None:
    events, checkpoints = a_trail()
    events[3] = rehashed(events[3], party="TRADER-B")
    # RFQ c's next event is log index 6, before the checkpoint of size 7 is reached.
    found = finding(verify(events, checkpoints))
    assert where(found) == ("event", 6, "rfq-c", 2, None)
    assert "prev_hash" in found.reason


def test_a_changed_leaf_hash_is_named() -> None:
    events, checkpoints = a_trail()
    events[4] = dataclasses.replace(events[4], leaf_hash=leaf_hash("f" * 64))
    found = finding(verify(events, checkpoints))
    assert where(found) == ("event", 4, "rfq-b", 2, None)
    assert "leaf" in found.reason


def test_a_trail_rewritten_consistently_is_caught_by_a_checkpoint_only() -> None:
    _, checkpoints = a_trail()
    forged = records()
    forged[4] = dataclasses.replace(forged[4], payload={"state": "CANCELLED"})
    rewritten = logged(chain({}, forged))
    # Every chain and leaf was recomputed: without checkpoints nothing shows.
    assert verify(rewritten, []).ok
    verdict = verify(rewritten, checkpoints)
    found = finding(verdict)
    assert where(found) == ("checkpoint", None, None, None, 7)
    assert checkpoints[1].root_hash in found.reason
    assert merkle.root(leaves(rewritten[:7])).hex() in found.reason
    assert (verdict.integrated, verdict.checkpoints) == (7, 1)


def test_a_cut_tail_is_caught_by_a_checkpoint_past_the_end_of_the_log() -> None:
    events, checkpoints = a_trail()
    verdict = verify(events[:8], checkpoints)
    found = finding(verdict)
    assert where(found) == ("checkpoint", None, None, None, 10)
    assert "2 missing" in found.reason
    assert (verdict.events, verdict.integrated, verdict.checkpoints) == (8, 8, 2)


def test_a_tail_not_yet_sequenced_still_owes_the_checkpoint_its_events() -> None:
    events, checkpoints = a_trail()
    # The last two events' log entries removed: they now read as not in the log.
    events[8:] = [dataclasses.replace(e, log_index=None) for e in events[8:]]
    found = finding(verify(events, checkpoints))
    assert where(found) == ("checkpoint", None, None, None, 10)
    assert "missing" in found.reason


def test_a_checkpoint_signed_by_another_key_is_named() -> None:
    events, checkpoints = a_trail()
    other = OTHER.sign(7, checkpoints[1].root_hash, checkpoints[1].timestamp)
    for forged in (other, dataclasses.replace(other, key_id=SIGNER.key_id)):
        verdict = verify(events, [checkpoints[0], forged, checkpoints[2]])
        found = finding(verdict)
        assert where(found) == ("checkpoint", None, None, None, 7)
        assert "not signed by the log" in found.reason
        assert verdict.events == 0


def test_a_checkpoint_older_than_a_smaller_one_is_named() -> None:
    events, _ = a_trail()
    tree = leaves(events)
    small = SIGNER.sign(3, merkle.root(tree[:3]).hex(), START + timedelta(minutes=10))
    large = SIGNER.sign(7, merkle.root(tree[:7]).hex(), START + timedelta(minutes=5))
    found = finding(verify(events, [large, small]))
    assert where(found) == ("checkpoint", None, None, None, 7)
    assert "older than" in found.reason


def test_two_signed_checkpoints_of_inconsistent_trees_cannot_both_hold() -> None:
    events, checkpoints = a_trail()
    forged_records = records()
    forged_records[1] = dataclasses.replace(forged_records[1], party="TRADER-B")
    forged = logged(chain({}, forged_records))
    first = checkpoints[0]
    second = signed(forged, (7,))[0]
    # Each signed by the log's key, yet the second does not extend the first's tree.
    assert not merkle.verify_consistency(
        3,
        7,
        bytes.fromhex(first.root_hash),
        bytes.fromhex(second.root_hash),
        merkle.consistency_proof(leaves(forged), 3, 7),
    )
    for trail, size in ((events, 7), (forged, 3)):
        assert where(finding(verify(trail, [first, second]))) == (
            "checkpoint",
            None,
            None,
            None,
            size,
        )


def test_without_a_public_key_signatures_are_skipped_but_roots_are_checked() -> None:
    events, checkpoints = a_trail()
    unsigned = [dataclasses.replace(c, signature="garbage", key_id="unknown") for c in checkpoints]
    assert not verify(events, unsigned).ok
    verdict = verify(events, unsigned, public_key=None)
    assert verdict.ok
    assert verdict.checkpoints == 3

    wrong = dataclasses.replace(unsigned[1], root_hash="f" * 64)
    found = finding(verify(events, [unsigned[0], wrong, unsigned[2]], public_key=None))
    assert where(found) == ("checkpoint", None, None, None, 7)


def test_check_keeps_returning_the_first_finding() -> None:
    events, checkpoints = a_trail()
    verifier = TrailVerifier(checkpoints, SIGNER.public_key)
    for event in events[:4]:
        assert verifier.check(event) is None
    first = verifier.check(changed(events[4], party="TRADER-B"))
    assert first is not None
    assert first.log_index == 4
    assert verifier.check(events[5]) == first
    assert verifier.check(dataclasses.replace(events[6], leaf_hash="0" * 64)) == first
    verdict = verifier.finish()
    assert verdict.finding == first
    assert verdict.events == 4


def test_input_that_is_not_a_trail_is_an_input_finding() -> None:
    events, checkpoints = a_trail()
    verifier = TrailVerifier(checkpoints, SIGNER.public_key)
    for event in events[:2]:
        verifier.check(event)
    verdict = verifier.fail_input("line 3: not JSON")
    assert verdict.finding == Finding("input", "line 3: not JSON")
    assert (verdict.events, verdict.integrated) == (2, 2)
    assert not verdict.ok


def test_input_failing_after_a_finding_keeps_the_finding() -> None:
    events, checkpoints = a_trail()
    verifier = TrailVerifier(checkpoints, SIGNER.public_key)
    found = verifier.check(changed(events[0], party="TRADER-B"))
    assert found is not None
    assert verifier.fail_input("line 2: not JSON").finding == found


def export_line(event: LoggedEvent) -> dict[str, object]:
    """The event as `otc audit export` writes it."""
    row, record = event.chained, event.chained.record
    return {
        "log_index": event.log_index,
        "rfq_id": record.rfq_id,
        "rfq_seq": row.rfq_seq,
        "event_type": record.event_type,
        "occurred_at": utc_iso(record.occurred_at),
        "producer": record.producer,
        "event_id": record.event_id,
        "correlation_id": record.correlation_id,
        "causation_id": record.causation_id,
        "party": record.party,
        "payload": plain_json(record.payload),
        "prev_hash": row.prev_hash,
        "hash": row.hash,
        "leaf_hash": event.leaf_hash,
    }


def read_back(event: LoggedEvent) -> LoggedEvent:
    return exported_event(json.loads(json.dumps(export_line(event))))


def test_an_exported_event_reads_back_as_it_was() -> None:
    record = AuditRecord(
        rfq_id="rfq-a",
        event_type="otc.v1.QuoteRecorded",
        occurred_at=START,
        producer="quoting",
        event_id="event-0",
        correlation_id="rfq-a",
        causation_id="cause-0",
        party="MAKER-1",
        payload={"price": "101.25", "legs": [1, True, None, {"side": "BUY"}], "n": 3},
    )
    row = chain({}, [record])[0]
    for log_index in (0, None):
        event = LoggedEvent(log_index, row, leaf_hash(row.hash))
        assert read_back(event) == event


def test_an_exported_trail_reads_back_into_the_same_verdict() -> None:
    events = logged(chain({}, records()), integrated=7)
    checkpoints = signed(events, (3, 7))
    # The payloads' decimals come back as strings, which hash the same.
    assert verify(map(read_back, events), checkpoints) == verify(events, checkpoints)
    assert verify(map(read_back, events), checkpoints).ok


FIELDS = [
    "log_index",
    "rfq_id",
    "rfq_seq",
    "event_type",
    "occurred_at",
    "producer",
    "event_id",
    "correlation_id",
    "causation_id",
    "party",
    "payload",
    "prev_hash",
    "hash",
    "leaf_hash",
]


@pytest.mark.parametrize("name", FIELDS)
def test_an_exported_event_missing_a_field_is_refused_naming_it(name: str) -> None:
    line = export_line(a_trail()[0][0])
    del line[name]
    with pytest.raises(ValueError, match=name):
        exported_event(line)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("log_index", -1),
        ("log_index", "3"),
        ("rfq_seq", True),
        ("rfq_seq", "1"),
        ("party", 7),
        ("payload", ["state", "QUOTED"]),
    ],
)
def test_an_exported_event_with_a_malformed_field_is_refused_naming_it(
    name: str, value: object
) -> None:
    line = {**export_line(a_trail()[0][0]), name: value}
    with pytest.raises(ValueError, match=name):
        exported_event(line)


@pytest.mark.parametrize(
    "payload",
    [{"price": 101.25}, {"legs": [{"price": 1.5}]}, {"nested": {"qty": 1e3}}],
)
def test_an_exported_event_with_a_float_in_its_payload_is_refused(
    payload: dict[str, object],
) -> None:
    line = {**export_line(a_trail()[0][0]), "payload": payload}
    with pytest.raises(ValueError, match="payload"):
        exported_event(line)


@pytest.mark.parametrize("value", [[], "event", 3, None])
def test_an_exported_event_that_is_not_an_object_is_refused(value: object) -> None:
    with pytest.raises(ValueError, match="object"):
        exported_event(value)


def test_an_exported_event_with_a_time_not_in_utc_is_refused() -> None:
    line = {**export_line(a_trail()[0][0]), "occurred_at": "2026-12-05T09:00:00.000000"}
    with pytest.raises(ValueError, match="ending in Z"):
        exported_event(line)
