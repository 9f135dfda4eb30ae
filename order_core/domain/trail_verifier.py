"""Verification of a whole audit trail, without I/O: every RFQ's hash chain, the
log's order and Merkle tree, and the signed checkpoints the tree must match.

Events are fed one at a time, the log's in log order, then those not yet in the
log, so a trail of any length streams through in constant memory but for one
head per RFQ. The first thing that does not hold is the finding, and checking
stops there:

- a checkpoint whose signature fails, or that was signed before a smaller one;
- an event out of its place in the log (an index missing, repeated or moved);
- an event out of its place in its RFQ's chain, a `prev_hash` that is not its
  predecessor's hash, a stored hash its content no longer gives, a leaf hash that
  is not its hash's leaf;
- a checkpoint whose root is not the root of the log's first `tree_size` events
  (something among them was changed, removed, inserted or moved: even when every
  chain and leaf was recomputed, the signed root cannot be), or one for more
  events than the log holds (its tail was cut).

The same code judges the database (`/v1/audit/verify`, `otc audit verify`, `otc
check`) and an export offline (`otc audit verify --export`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from order_core.domain.audit import (
    GENESIS_HASH,
    AuditRecord,
    ChainedRecord,
    JsonValue,
    LoggedEvent,
    canonical_json,
    chain_hash,
    hashed_fields,
    leaf_hash,
    parse_utc_iso,
    utc_iso,
)
from order_core.domain.checkpoints import Checkpoint, key_id, signature_holds
from order_core.domain.merkle import Frontier

FindingKind = Literal["event", "checkpoint", "input"]


@dataclass(frozen=True, slots=True)
class Finding:
    kind: FindingKind
    reason: str
    log_index: int | None = None
    rfq_id: str | None = None
    rfq_seq: int | None = None
    tree_size: int | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    events: int  # checked before the finding, or all of them
    integrated: int  # of which in the log
    tree_size: int
    root_hash: str
    checkpoints: int  # whose root was matched
    signed_size: int  # the largest tree such a checkpoint covers: what is vouched for
    finding: Finding | None

    @property
    def ok(self) -> bool:
        return self.finding is None


def _at(event: LoggedEvent, reason: str, *, at: int | None = None) -> Finding:
    return Finding(
        "event",
        reason,
        log_index=event.log_index if at is None else at,
        rfq_id=event.chained.record.rfq_id,
        rfq_seq=event.chained.rfq_seq,
    )


def _named(checkpoint: Checkpoint) -> str:
    signed_at = utc_iso(checkpoint.timestamp)
    return f"the checkpoint of tree size {checkpoint.tree_size} signed at {signed_at}"


class TrailVerifier:
    def __init__(
        self, checkpoints: Iterable[Checkpoint], public_key: Ed25519PublicKey | None
    ) -> None:
        self._due = deque(sorted(checkpoints, key=lambda c: (c.tree_size, c.timestamp)))
        self._heads: dict[str, tuple[int, str]] = {}
        self._tree = Frontier()
        self._events = 0
        self._matched = 0
        self._signed_size = 0
        self._past_the_log = False
        self._finding = self._check_signatures(public_key)

    def _check_signatures(self, public_key: Ed25519PublicKey | None) -> Finding | None:
        latest: Checkpoint | None = None
        for checkpoint in self._due:
            if public_key is not None and not signature_holds(checkpoint, public_key):
                return Finding(
                    "checkpoint",
                    f"{_named(checkpoint)} (key {checkpoint.key_id}) does not verify with "
                    f"the public key {key_id(public_key)}: it was not signed by the log",
                    tree_size=checkpoint.tree_size,
                )
            if latest is not None and checkpoint.timestamp < latest.timestamp:
                return Finding(
                    "checkpoint",
                    f"{_named(checkpoint)} is older than {_named(latest)}, of a smaller tree",
                    tree_size=checkpoint.tree_size,
                )
            latest = checkpoint
        return None

    def check(self, event: LoggedEvent) -> Finding | None:
        """The finding this event makes, or the one made before it; None while
        everything holds."""
        if self._finding is None:
            self._finding = self._place_in_log(event) or self._place_in_chain(event)
            if self._finding is None:
                self._events += 1
                if event.log_index is not None:
                    self._tree.append(bytes.fromhex(event.leaf_hash))
                    self._finding = self._reach_checkpoints()
        return self._finding

    def _place_in_log(self, event: LoggedEvent) -> Finding | None:
        index, expected = event.log_index, self._tree.size
        if index is None:
            self._past_the_log = True
            return None
        if self._past_the_log:
            return _at(event, f"log index {index} comes after events not in the log: moved")
        if index > expected:
            return _at(
                event,
                f"log index {expected} missing: log index {index} follows "
                + (f"log index {expected - 1}" if expected else "the start of the log"),
                at=expected,
            )
        if index < expected:
            return _at(
                event,
                f"log index {index} again or out of order: it follows log index {expected - 1}",
            )
        return None

    def _place_in_chain(self, event: LoggedEvent) -> Finding | None:
        row = event.chained
        rfq_id = row.record.rfq_id
        last_seq, last_hash = self._heads.get(rfq_id, (0, GENESIS_HASH))
        expected = last_seq + 1
        named = f"RFQ {rfq_id}'s event {row.rfq_seq}"
        if row.rfq_seq > expected:
            gap = f"event {expected}" if row.rfq_seq == expected + 1 else "events"
            return _at(event, f"{named} follows its event {last_seq}: {gap} missing")
        if row.rfq_seq < expected:
            return _at(event, f"{named} again or out of order: it follows its event {last_seq}")
        if row.prev_hash != last_hash:
            return _at(
                event,
                f"{named} has prev_hash {row.prev_hash}, not the hash of its event "
                f"{last_seq} ({last_hash})",
            )
        recomputed = chain_hash(last_hash, row.rfq_seq, row.record)
        if row.hash != recomputed:
            return _at(
                event,
                f"{named} stores hash {row.hash} but hashes to {recomputed}: its content "
                "was changed",
            )
        if event.leaf_hash != leaf_hash(row.hash):
            return _at(event, f"{named} has leaf hash {event.leaf_hash}, not the leaf of its hash")
        self._heads[rfq_id] = (row.rfq_seq, row.hash)
        return None

    def _reach_checkpoints(self) -> Finding | None:
        size = self._tree.size
        while self._due and self._due[0].tree_size <= size:
            checkpoint = self._due.popleft()
            actual = self._tree.root().hex()
            if checkpoint.root_hash != actual:
                return Finding(
                    "checkpoint",
                    f"{_named(checkpoint)} has root {checkpoint.root_hash}, but the log's "
                    f"first {size} events have root {actual}: an event among them was "
                    "changed, removed, inserted or moved",
                    tree_size=size,
                )
            self._matched += 1
            self._signed_size = checkpoint.tree_size
        return None

    def fail_input(self, reason: str) -> Verdict:
        """Ends the check on input that cannot be read as a trail."""
        if self._finding is None:
            self._finding = Finding("input", reason)
        return self.finish()

    def finish(self) -> Verdict:
        """The verdict once every event was fed (or a finding stopped it)."""
        if self._finding is None and self._due:
            checkpoint = self._due[0]
            cut = checkpoint.tree_size - self._tree.size
            self._finding = Finding(
                "checkpoint",
                f"{_named(checkpoint)} covers {checkpoint.tree_size} events but the log "
                f"holds {self._tree.size}: {cut} missing from its end",
                tree_size=checkpoint.tree_size,
            )
        return Verdict(
            events=self._events,
            integrated=self._tree.size,
            tree_size=self._tree.size,
            root_hash=self._tree.root().hex(),
            checkpoints=self._matched,
            signed_size=self._signed_size,
            finding=self._finding,
        )


def _text(event: Mapping[str, object], name: str) -> str:
    value = event.get(name)
    if not isinstance(value, str):
        raise ValueError(f"{name}: a string")
    return value


def _whole(event: Mapping[str, object], name: str) -> int:
    value = event.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name}: a non-negative integer")
    return value


def _json_value(value: object) -> JsonValue:
    if isinstance(value, float):
        raise ValueError("payload: a number with a fraction (the trail writes decimals as strings)")
    if value is None or isinstance(value, str | int | Decimal):
        return value
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    raise ValueError(f"payload: {type(value).__name__} is not JSON")


def exported_event(event: object) -> LoggedEvent:
    """One event of an export (a JSON object as `otc audit export` writes it);
    ValueError naming the field that is missing or malformed."""
    if not isinstance(event, Mapping):
        raise ValueError("an event is a JSON object")
    payload = event.get("payload")
    if not isinstance(payload, dict):
        raise ValueError("payload: a JSON object")
    if "log_index" not in event:
        raise ValueError("log_index: missing (null for an event not yet in the log)")
    try:
        occurred_at = parse_utc_iso(_text(event, "occurred_at"))
    except ValueError as exc:
        raise ValueError(f"occurred_at: {exc}") from None
    record = AuditRecord(
        rfq_id=_text(event, "rfq_id"),
        event_type=_text(event, "event_type"),
        occurred_at=occurred_at,
        producer=_text(event, "producer"),
        event_id=_text(event, "event_id"),
        correlation_id=_text(event, "correlation_id"),
        causation_id=_text(event, "causation_id"),
        party=_text(event, "party"),
        payload={str(k): _json_value(v) for k, v in payload.items()},
    )
    chained = ChainedRecord(
        rfq_seq=_whole(event, "rfq_seq"),
        record=record,
        prev_hash=_text(event, "prev_hash"),
        hash=_text(event, "hash"),
    )
    try:
        canonical_json(hashed_fields(chained.rfq_seq, record))
    except (ValueError, RecursionError) as exc:  # a lone surrogate, nesting too deep
        raise ValueError(f"an event that cannot be hashed: {exc}") from None
    return LoggedEvent(
        log_index=None if event.get("log_index") is None else _whole(event, "log_index"),
        chained=chained,
        leaf_hash=_text(event, "leaf_hash"),
    )
