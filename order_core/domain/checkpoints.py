"""Signed checkpoints of the audit log, without I/O: what is signed, with which key,
and how a checkpoint travels as JSON.

A checkpoint says "the first `tree_size` events of the log have Merkle root
`root_hash`", as of `timestamp`, signed with Ed25519 over these UTF-8 lines:

    otc-rfq audit checkpoint v1
    <tree_size in decimal>
    <root_hash, 64 lowercase hex digits>
    <timestamp, ISO 8601 UTC with microseconds and a Z>

each ended by a newline. The key id is the first 8 bytes of SHA-256 of the raw
32-byte public key, in hex, so a verifier can tell which key a checkpoint needs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from order_core.domain.audit import parse_utc_iso, utc_iso

HEADER = "otc-rfq audit checkpoint v1"
_HEX_HASH = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    tree_size: int
    root_hash: str
    timestamp: datetime
    key_id: str
    signature: str  # base64


def signed_text(tree_size: int, root_hash: str, timestamp: datetime) -> bytes:
    return f"{HEADER}\n{tree_size}\n{root_hash}\n{utc_iso(timestamp)}\n".encode()


def _raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public_key: Ed25519PublicKey) -> str:
    return hashlib.sha256(_raw(public_key)).digest()[:8].hex()


def public_pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    """ValueError unless `pem` is an Ed25519 public key (or a private key, whose
    public half is taken)."""
    try:
        key: object = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm):
        try:
            key = serialization.load_pem_private_key(pem, password=None).public_key()
        except (ValueError, TypeError, UnsupportedAlgorithm):  # TypeError: encrypted
            raise ValueError("not a PEM public key, nor an unencrypted private key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 key")
    return key


def signature_holds(checkpoint: Checkpoint, public_key: Ed25519PublicKey) -> bool:
    if checkpoint.key_id != key_id(public_key):
        return False
    try:
        signature = base64.b64decode(checkpoint.signature, validate=True)
        public_key.verify(
            signature,
            signed_text(checkpoint.tree_size, checkpoint.root_hash, checkpoint.timestamp),
        )
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


class CheckpointSigner:
    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key = private_key.public_key()
        self.key_id = key_id(self.public_key)

    @classmethod
    def generate(cls) -> CheckpointSigner:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_pem(cls, pem: bytes) -> CheckpointSigner:
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("not an Ed25519 private key")
        return cls(key)

    def private_pem(self) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def public_pem(self) -> str:
        return public_pem(self.public_key)

    def sign(self, tree_size: int, root_hash: str, timestamp: datetime) -> Checkpoint:
        if tree_size < 1 or not _HEX_HASH.fullmatch(root_hash):
            raise ValueError(f"not a checkpoint: size {tree_size}, root {root_hash!r}")
        signature = self._key.sign(signed_text(tree_size, root_hash, timestamp))
        return Checkpoint(
            tree_size=tree_size,
            root_hash=root_hash,
            timestamp=parse_utc_iso(utc_iso(timestamp)),
            key_id=self.key_id,
            signature=base64.b64encode(signature).decode("ascii"),
        )


def checkpoint_json(checkpoint: Checkpoint) -> dict[str, str | int]:
    return {
        "tree_size": checkpoint.tree_size,
        "root_hash": checkpoint.root_hash,
        "timestamp": utc_iso(checkpoint.timestamp),
        "key_id": checkpoint.key_id,
        "signature": checkpoint.signature,
    }


def checkpoint_from_json(value: object) -> Checkpoint:
    """ValueError naming what is wrong when `value` is not a checkpoint's JSON."""
    if not isinstance(value, Mapping):
        raise ValueError("a checkpoint is a JSON object")
    size = value.get("tree_size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ValueError("tree_size: a positive integer")
    root_hash = value.get("root_hash")
    if not isinstance(root_hash, str) or not _HEX_HASH.fullmatch(root_hash):
        raise ValueError("root_hash: 64 lowercase hex digits")
    texts = {}
    for name in ("timestamp", "key_id", "signature"):
        text = value.get(name)
        if not isinstance(text, str) or not text:
            raise ValueError(f"{name}: a non-empty string")
        texts[name] = text
    try:
        timestamp = parse_utc_iso(texts["timestamp"])
    except ValueError as exc:
        raise ValueError(f"timestamp: {exc}") from None
    return Checkpoint(
        tree_size=size,
        root_hash=root_hash,
        timestamp=timestamp,
        key_id=texts["key_id"],
        signature=texts["signature"],
    )
