"""The auditor API's response bodies and documented errors, as its OpenAPI
document shows them."""

from typing import Any, Literal

from pydantic import BaseModel, Field

from order_core.domain.checkpoints import Checkpoint, checkpoint_json


class AuditEventOut(BaseModel):
    log_index: int | None = Field(
        description="position in the global log, from 0, without gaps; null until the "
        "sequencer has integrated the event (exports only)"
    )
    rfq_id: str
    rfq_seq: int = Field(description="position in its RFQ's hash chain, from 1, without gaps")
    event_type: str = Field(examples=["otc.v1.OrderStateChanged", "otc.v1.QuoteRecorded"])
    occurred_at: str = Field(description="ISO 8601 UTC with microseconds, as hashed")
    producer: str
    event_id: str
    correlation_id: str
    causation_id: str
    party: str = Field(description="the RFQ's requester")
    payload: dict[str, Any]
    prev_hash: str = Field(description="hash of the RFQ's previous event (64 zeros for its first)")
    hash: str = Field(description="SHA-256 of prev_hash and the canonical JSON of the event")
    leaf_hash: str = Field(description="its Merkle leaf: SHA-256 of 0x00 and the hash's bytes")


class EventsPage(BaseModel):
    items: list[AuditEventOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page")


class FindingOut(BaseModel):
    kind: Literal["event", "checkpoint", "input"]
    reason: str
    log_index: int | None
    rfq_id: str | None
    rfq_seq: int | None
    tree_size: int | None = Field(description="the checkpoint concerned, by its tree size")


class VerifyReport(BaseModel):
    ok: bool
    events: int = Field(description="events checked before the first finding, or all of them")
    integrated: int = Field(description="of which in the log")
    tree_size: int
    root_hash: str = Field(description="Merkle root of the log as checked")
    checkpoints: int = Field(description="signed checkpoints checked against it")
    signed_size: int = Field(
        description="events the checkpoints vouch for: the largest tree size matched"
    )
    finding: FindingOut | None = Field(description="the first thing that does not hold")


class CheckpointOut(BaseModel):
    tree_size: int
    root_hash: str = Field(
        description="hex SHA-256 Merkle root (RFC 6962) of the first tree_size events"
    )
    timestamp: str = Field(description="when it was signed, ISO 8601 UTC with microseconds")
    key_id: str = Field(description="first 8 bytes of SHA-256 of the raw public key, hex")
    signature: str = Field(
        description="base64 Ed25519 signature over the signed text (docs/audit.md)"
    )


class CheckpointsPage(BaseModel):
    items: list[CheckpointOut]


class InclusionProofOut(BaseModel):
    log_index: int
    tree_size: int
    leaf_hash: str
    root_hash: str
    proof: list[str] = Field(description="the audit path, hex, leaf to root (RFC 6962 2.1.1)")
    checkpoint: CheckpointOut | None = Field(description="the signed checkpoint of that size")


class ConsistencyProofOut(BaseModel):
    first: int
    second: int
    first_root: str
    second_root: str
    proof: list[str] = Field(description="hex, as RFC 6962 2.1.2 defines it")


class PublicKeyOut(BaseModel):
    key_id: str
    public_key_pem: str


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "missing or invalid bearer token"},
    403: {"model": ErrorBody, "description": "the token's role is not auditor or admin"},
    404: {"model": ErrorBody, "description": "no such event, tree size or checkpoint"},
    422: {"model": ErrorBody, "description": "a query parameter is invalid"},
}


def checkpoint_out(checkpoint: Checkpoint) -> CheckpointOut:
    return CheckpointOut.model_validate(checkpoint_json(checkpoint))
