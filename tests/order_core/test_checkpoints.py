"""Signed checkpoints of the audit log, with no servers: the exact bytes signed, a
signature that holds for nothing but what was signed with the log's key, and the
keys and the checkpoints as they travel in PEM and JSON."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from order_core.domain.checkpoints import (
    Checkpoint,
    CheckpointSigner,
    checkpoint_from_json,
    checkpoint_json,
    key_id,
    load_public_key,
    public_pem,
    signature_holds,
    signed_text,
)

AT = datetime(2026, 11, 22, 12, 0, 0, 123456, tzinfo=UTC)
ROOT = "0123456789abcdef" * 4
SIGNER = CheckpointSigner.generate()
OTHER = CheckpointSigner.generate()


def a_checkpoint(signer: CheckpointSigner = SIGNER) -> Checkpoint:
    return signer.sign(42, ROOT, AT)


def test_a_signed_checkpoint_holds_with_the_signers_public_key() -> None:
    checkpoint = a_checkpoint()
    assert checkpoint == Checkpoint(42, ROOT, AT, SIGNER.key_id, checkpoint.signature)
    assert signature_holds(checkpoint, SIGNER.public_key)
    assert not signature_holds(checkpoint, OTHER.public_key)


def test_the_checkpoint_keeps_its_time_in_utc_as_signed() -> None:
    paris = timezone(timedelta(hours=1))
    checkpoint = SIGNER.sign(42, ROOT, datetime(2026, 11, 22, 13, 0, 0, 123456, tzinfo=paris))
    assert checkpoint.timestamp.tzinfo is UTC
    assert checkpoint.timestamp == AT
    assert signature_holds(checkpoint, SIGNER.public_key)


def test_the_key_id_is_the_start_of_the_sha256_of_the_raw_public_key() -> None:
    raw = SIGNER.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert key_id(SIGNER.public_key) == hashlib.sha256(raw).hexdigest()[:16]
    assert SIGNER.key_id == key_id(SIGNER.public_key)
    assert OTHER.key_id != SIGNER.key_id


@pytest.mark.parametrize(
    "change",
    [
        {"tree_size": 43},
        {"tree_size": 41},
        {"root_hash": "f" + ROOT[1:]},
        {"timestamp": AT + timedelta(microseconds=1)},
        {"key_id": "0" * 16},
        {"signature": "not base64 at all!"},
        {"signature": base64.b64encode(b"\x00" * 64).decode()},
        {"signature": base64.b64encode(b"too short").decode()},
        {"signature": ""},
    ],
)
def test_a_changed_checkpoint_does_not_hold(change: dict[str, object]) -> None:
    changed = dataclasses.replace(a_checkpoint(), **change)  # type: ignore[arg-type]
    assert not signature_holds(changed, SIGNER.public_key)


def test_a_signature_of_another_key_does_not_hold_even_under_the_right_key_id() -> None:
    forged = dataclasses.replace(a_checkpoint(), signature=a_checkpoint(OTHER).signature)
    assert forged.key_id == SIGNER.key_id
    assert not signature_holds(forged, SIGNER.public_key)
    assert not signature_holds(a_checkpoint(OTHER), SIGNER.public_key)


def test_a_signature_of_another_checkpoint_by_the_same_key_does_not_hold() -> None:
    other = SIGNER.sign(43, ROOT, AT)
    moved = dataclasses.replace(a_checkpoint(), signature=other.signature)
    assert not signature_holds(moved, SIGNER.public_key)


@pytest.mark.parametrize(
    ("size", "root_hash"), [(0, ROOT), (-1, ROOT), (1, ROOT.upper()), (1, "ab")]
)
def test_the_signer_refuses_what_is_not_a_checkpoint(size: int, root_hash: str) -> None:
    with pytest.raises(ValueError, match="not a checkpoint"):
        SIGNER.sign(size, root_hash, AT)


def test_the_signed_text_is_the_documented_lines() -> None:
    paris = timezone(timedelta(hours=1))
    text = signed_text(7, "ab" * 32, datetime(2026, 11, 22, 13, 0, 0, 5, tzinfo=paris))
    assert text == (
        b"otc-rfq audit checkpoint v1\n"
        b"7\n"
        b"abababababababababababababababababababababababababababababababab\n"
        b"2026-11-22T12:00:00.000005Z\n"
    )


def test_the_signature_is_ed25519_over_the_signed_text() -> None:
    checkpoint = a_checkpoint()
    # Verifying outside the module: an auditor with only the public key and the
    # documented format must be able to check a checkpoint.
    SIGNER.public_key.verify(base64.b64decode(checkpoint.signature), signed_text(42, ROOT, AT))


def test_the_private_key_survives_pem() -> None:
    pem = SIGNER.private_pem()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    restored = CheckpointSigner.from_pem(pem)
    assert restored.key_id == SIGNER.key_id
    assert signature_holds(restored.sign(42, ROOT, AT), SIGNER.public_key)


def test_the_public_key_survives_pem() -> None:
    pem = SIGNER.public_pem()
    assert pem == public_pem(SIGNER.public_key)
    assert pem.startswith("-----BEGIN PUBLIC KEY-----")
    loaded = load_public_key(pem.encode())
    assert key_id(loaded) == SIGNER.key_id
    assert signature_holds(a_checkpoint(), loaded)


def test_a_private_pem_loads_as_its_public_half() -> None:
    loaded = load_public_key(SIGNER.private_pem())
    assert key_id(loaded) == SIGNER.key_id
    assert signature_holds(a_checkpoint(), loaded)


def test_keys_other_than_ed25519_are_refused() -> None:
    p256 = ec.generate_private_key(ec.SECP256R1())
    private = p256.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = p256.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(ValueError, match="Ed25519"):
        load_public_key(public)
    with pytest.raises(ValueError, match="Ed25519"):
        load_public_key(private)
    with pytest.raises(ValueError, match="Ed25519"):
        CheckpointSigner.from_pem(private)


def test_what_is_not_a_pem_is_refused() -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message is cryptography's own
        load_public_key(b"-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n")


def test_a_checkpoint_survives_json() -> None:
    checkpoint = a_checkpoint()
    value = checkpoint_json(checkpoint)
    assert value == {
        "tree_size": 42,
        "root_hash": ROOT,
        "timestamp": "2026-11-22T12:00:00.123456Z",
        "key_id": SIGNER.key_id,
        "signature": checkpoint.signature,
    }
    read = checkpoint_from_json(json.loads(json.dumps(value)))
    assert read == checkpoint
    assert signature_holds(read, SIGNER.public_key)


def _without(name: str) -> dict[str, object]:
    value: dict[str, object] = dict(checkpoint_json(a_checkpoint()))
    del value[name]
    return value


def _with(name: str, field_value: object) -> dict[str, object]:
    return {**checkpoint_json(a_checkpoint()), name: field_value}


@pytest.mark.parametrize(
    ("value", "named"),
    [
        pytest.param([], "object", id="a list"),
        pytest.param("checkpoint", "object", id="a string"),
        pytest.param(_with("tree_size", 0), "tree_size", id="tree_size 0"),
        pytest.param(_with("tree_size", -3), "tree_size", id="tree_size negative"),
        pytest.param(_with("tree_size", True), "tree_size", id="tree_size bool"),
        pytest.param(_with("tree_size", "42"), "tree_size", id="tree_size str"),
        pytest.param(_without("tree_size"), "tree_size", id="tree_size missing"),
        pytest.param(_with("root_hash", ROOT.upper()), "root_hash", id="root_hash uppercase"),
        pytest.param(_with("root_hash", ROOT[:-2]), "root_hash", id="root_hash short"),
        pytest.param(_without("timestamp"), "timestamp", id="timestamp missing"),
        pytest.param(_with("timestamp", 1764000000), "timestamp", id="timestamp a number"),
        pytest.param(_without("key_id"), "key_id", id="key_id missing"),
        pytest.param(_with("signature", ""), "signature", id="signature empty"),
    ],
)
def test_malformed_checkpoint_json_is_refused_naming_the_field(value: object, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        checkpoint_from_json(value)


def test_a_timestamp_without_z_is_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match="timestamp"):
        checkpoint_from_json(_with("timestamp", "2026-11-22T12:00:00.123456"))


def test_a_timestamp_without_z_is_refused() -> None:
    # Read as local time it would name another moment than the one signed.
    with pytest.raises(ValueError, match="ending in Z"):
        checkpoint_from_json(_with("timestamp", "2026-11-22T12:00:00.123456"))
