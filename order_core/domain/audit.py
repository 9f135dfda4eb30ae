"""The audit trail's hash chain, without I/O: how a record is encoded, how it is
chained to the one before it, and how a chain is checked.

Row n stores `hash = SHA-256(hash of row n-1 + canonical JSON of row n)`, hex, where
the canonical JSON holds the row's `seq` and every field of its record. `seq` is
hashed so that a row moved to another position, or the row after a deleted one,
no longer hashes to what was stored, even when its `prev_hash` was rewritten to
match. The first row chains from `GENESIS_HASH`.

Canonical JSON is keys sorted, no whitespace, UTF-8 (no `\\u` escapes), decimals
as plain strings and timestamps as ISO-8601 UTC with microseconds. Floats are
refused: money never is one, and a float may not read back as the same text.

A chain whose every row was recomputed by someone with write access still checks
out; what detects that is comparing the head with a copy kept elsewhere.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TypeAlias

GENESIS_HASH = "0" * 64

JsonValue: TypeAlias = (
    str | int | bool | Decimal | datetime | Sequence["JsonValue"] | Mapping[str, "JsonValue"] | None
)
PlainJson: TypeAlias = str | int | bool | list["PlainJson"] | dict[str, "PlainJson"] | None


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audited event: a state change or a recorded quote, as its envelope had it."""

    rfq_id: str
    event_type: str
    occurred_at: datetime
    producer: str
    event_id: str
    correlation_id: str
    causation_id: str
    party: str
    payload: Mapping[str, JsonValue]


@dataclass(frozen=True, slots=True)
class ChainedRecord:
    """A record at its place in the chain, as stored."""

    seq: int
    record: AuditRecord
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class ChainBreak:
    seq: int
    reason: str


def utc_iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r} in an audit record")
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def plain_json(value: JsonValue) -> PlainJson:
    """The value with decimals and timestamps turned into their canonical strings:
    what the database stores, and what reads back into the same canonical bytes."""
    if isinstance(value, float):
        raise TypeError(f"float {value!r} in an audit record; use Decimal")
    if value is None or isinstance(value, str | int):
        return value
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"non-finite decimal {value} in an audit record")
        return format(value, "f")
    if isinstance(value, datetime):
        return utc_iso(value)
    if isinstance(value, Mapping):
        return {_key(k): plain_json(v) for k, v in value.items()}
    return [plain_json(v) for v in value]


def _key(key: object) -> str:
    if not isinstance(key, str):
        raise TypeError(f"audit record keys must be strings, got {key!r}")
    return key


def canonical_json(value: JsonValue) -> bytes:
    return json.dumps(
        plain_json(value),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    ).encode("utf-8")


def hashed_fields(seq: int, record: AuditRecord) -> dict[str, JsonValue]:
    return {
        "seq": seq,
        "rfq_id": record.rfq_id,
        "event_type": record.event_type,
        "occurred_at": record.occurred_at,
        "producer": record.producer,
        "event_id": record.event_id,
        "correlation_id": record.correlation_id,
        "causation_id": record.causation_id,
        "party": record.party,
        "payload": record.payload,
    }


def chain_hash(prev_hash: str, seq: int, record: AuditRecord) -> str:
    digest = hashlib.sha256(prev_hash.encode("ascii"))
    digest.update(canonical_json(hashed_fields(seq, record)))
    return digest.hexdigest()


def chain(head_seq: int, head_hash: str, records: Iterable[AuditRecord]) -> list[ChainedRecord]:
    """The records placed after the current head, in order."""
    chained = []
    for record in records:
        head_seq += 1
        digest = chain_hash(head_hash, head_seq, record)
        chained.append(ChainedRecord(head_seq, record, head_hash, digest))
        head_hash = digest
    return chained


class ChainVerifier:
    """Checks rows one at a time in seq order, so a chain of any length can be
    streamed through it; stops being useful at the first break it reports."""

    def __init__(self) -> None:
        self.count = 0
        self.last_seq = 0
        self.last_hash = GENESIS_HASH

    def check(self, row: ChainedRecord) -> ChainBreak | None:
        expected_seq = self.last_seq + 1
        if row.seq > expected_seq:
            missing = f"seq {expected_seq}" if row.seq == expected_seq + 1 else "rows"
            return ChainBreak(row.seq, f"follows seq {self.last_seq}: {missing} missing")
        if row.seq < expected_seq:
            return ChainBreak(row.seq, f"follows seq {self.last_seq}: rows out of order")
        if row.prev_hash != self.last_hash:
            return ChainBreak(
                row.seq,
                f"prev_hash {row.prev_hash} is not the hash of seq {self.last_seq} "
                f"({self.last_hash})",
            )
        recomputed = chain_hash(self.last_hash, row.seq, row.record)
        if row.hash != recomputed:
            return ChainBreak(
                row.seq,
                f"stored hash {row.hash} but the row hashes to {recomputed}: "
                "its content was changed",
            )
        self.count += 1
        self.last_seq, self.last_hash = row.seq, row.hash
        return None

    def check_head(self, head_seq: int, head_hash: str) -> ChainBreak | None:
        """Rows cut off the end of the chain leave no gap; only the head shows them."""
        if head_seq != self.last_seq:
            return ChainBreak(
                min(head_seq, self.last_seq) + 1,
                f"the head is at seq {head_seq} but the chain ends at seq {self.last_seq}",
            )
        if head_hash != self.last_hash:
            return ChainBreak(
                head_seq, f"the head's hash {head_hash} is not the hash of seq {head_seq}"
            )
        return None


def verify(rows: Iterable[ChainedRecord]) -> int | None:
    """The seq of the first row that breaks the chain, or None if it holds."""
    verifier = ChainVerifier()
    for row in rows:
        broken = verifier.check(row)
        if broken is not None:
            return broken.seq
    return None
