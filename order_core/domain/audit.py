"""The audit trail's hash chains, without I/O: how a record is encoded, how it is
chained to its RFQ's previous event, and what leaf it makes in the global log.

Each RFQ has its own chain: its n-th event stores
`hash = SHA-256(hash of its event n-1 + canonical JSON of event n)`, hex, where the
canonical JSON holds the event's `rfq_seq` (n) and every field of its record. The
position is hashed so that an event moved within its chain, or the one after a
deleted event, no longer hashes to what was stored even when its `prev_hash` was
rewritten to match. An RFQ's first event chains from `GENESIS_HASH`.

Canonical JSON is keys sorted, no whitespace, UTF-8 (no `\\u` escapes), decimals
as plain strings and timestamps as ISO-8601 UTC with microseconds. Floats are
refused: money never is one, and a float may not read back as the same text.

Chains recomputed by someone with write access still check out on their own;
what catches that is the log's Merkle tree against checkpoints signed with a key
the database does not hold (`order_core.domain.trail_verifier`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TypeAlias

from order_core.domain.merkle import hash_leaf

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
    """A record at its place in its RFQ's chain, as stored."""

    rfq_seq: int
    record: AuditRecord
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """A chained record as a reader of the log gets it: its log index (None until
    the sequencer has integrated it) and its Merkle leaf hash as stored."""

    log_index: int | None
    chained: ChainedRecord
    leaf_hash: str


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


_UTC_ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")


def parse_utc_iso(text: str) -> datetime:
    """The inverse of `utc_iso`; ValueError for anything else, since another form
    (an offset, a missing fraction) would not hash back to the same text."""
    if not _UTC_ISO.fullmatch(text):
        raise ValueError(
            f"not an ISO 8601 UTC time with microseconds ending in Z "
            f"(YYYY-MM-DDTHH:MM:SS.ffffffZ): {text!r}"
        )
    return datetime.fromisoformat(text.removesuffix("Z")).replace(tzinfo=UTC)


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


def hashed_fields(rfq_seq: int, record: AuditRecord) -> dict[str, JsonValue]:
    return {
        "rfq_seq": rfq_seq,
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


def chain_hash(prev_hash: str, rfq_seq: int, record: AuditRecord) -> str:
    digest = hashlib.sha256(prev_hash.encode("ascii"))
    digest.update(canonical_json(hashed_fields(rfq_seq, record)))
    return digest.hexdigest()


def leaf_hash(chain_hash_hex: str) -> str:
    """An event's leaf in the log's Merkle tree: RFC 6962's leaf hash of the 32
    bytes of its chain hash."""
    return hash_leaf(bytes.fromhex(chain_hash_hex)).hex()


def chain(
    heads: Mapping[str, tuple[int, str]], records: Iterable[AuditRecord]
) -> list[ChainedRecord]:
    """The records placed, in order, after their RFQs' last events (`heads`: RFQ id
    to that event's rfq_seq and hash; an RFQ not in it starts a chain)."""
    last = dict(heads)
    chained = []
    for record in records:
        rfq_seq, prev_hash = last.get(record.rfq_id, (0, GENESIS_HASH))
        rfq_seq += 1
        digest = chain_hash(prev_hash, rfq_seq, record)
        chained.append(ChainedRecord(rfq_seq, record, prev_hash, digest))
        last[record.rfq_id] = (rfq_seq, digest)
    return chained
