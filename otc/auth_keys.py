"""Where the token keys come from: the shared HS256 secret, an RS256 PEM public key,
or a JWKS file whose key the token's `kid` picks and which is read again when it
changes. Every way a key file cannot work is an `AuthConfigError`, raised when the
service starts, never on a request.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from otc.errors import Unauthorized
from otc.logging import get_logger
from otc.settings import Settings

log = get_logger(__name__)

Algorithm = Literal["HS256", "RS256"]
HS256: Algorithm = "HS256"
RS256: Algorithm = "RS256"
VerificationKey = str | RSAPublicKey


class AuthConfigError(ValueError):
    """The token settings cannot work: a missing or unreadable key, or a clash."""


class KeySource(Protocol):
    def key_for(self, kid: str | None) -> VerificationKey: ...


@dataclass(frozen=True, slots=True)
class OneKey:
    key: VerificationKey

    def key_for(self, kid: str | None) -> VerificationKey:
        return self.key


class JwksFile:
    """The RS256 keys of a JWKS file by `kid`. The file is read again when it
    changes, so a key is added or retired by rewriting the file, without a restart."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._stamp = _stamp(path)
        self._keys = read_jwks(path)

    def key_for(self, kid: str | None) -> VerificationKey:
        if kid is None:
            raise Unauthorized("token has no kid, which the key set needs to pick a key")
        self._reload_if_changed()
        key = self._keys.get(kid)
        if key is None:
            raise Unauthorized(f"unknown signing key id {kid!r}")
        return key

    def _reload_if_changed(self) -> None:
        try:
            stamp = _stamp(self._path)
            if stamp == self._stamp:
                return
            # noted before reading, so a broken file is not re-read on every request
            self._stamp = stamp
            self._keys = read_jwks(self._path)
        except (OSError, AuthConfigError) as exc:
            log.warning("key set not reloaded; the previous keys stay", error=str(exc))


def _stamp(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)
    return st.st_ino, st.st_mtime_ns, st.st_size


def read_jwks(path: Path) -> dict[str, RSAPublicKey]:
    """The RS256 signature keys of a JWKS file by kid; other keys are skipped."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise AuthConfigError(f"cannot read the key set {path}: {exc}") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise AuthConfigError(f"{path} is not a JWKS: no 'keys' list")
    keys: dict[str, RSAPublicKey] = {}
    for entry in entries:
        if not (
            isinstance(entry, dict)
            and entry.get("kty") == "RSA"
            and entry.get("alg", RS256) == RS256
            and entry.get("use", "sig") == "sig"
        ):
            continue
        kid = entry.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthConfigError(f"{path}: an RSA key has no kid")
        if kid in keys:
            raise AuthConfigError(f"{path}: two keys share the kid {kid!r}")
        try:
            key = jwt.PyJWK(entry, RS256).key
        except jwt.PyJWKError as exc:
            raise AuthConfigError(f"{path}: key {kid!r} is unusable: {exc}") from None
        # a private JWK published by mistake still verifies only with its public half
        keys[kid] = key.public_key() if isinstance(key, RSAPrivateKey) else key
    if not keys:
        raise AuthConfigError(f"{path} holds no RS256 signature key")
    return keys


def _read_pem(path: Path, setting: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise AuthConfigError(f"{setting}: cannot read {path}: {exc}") from None


def read_public_pem(path: Path) -> RSAPublicKey:
    try:
        key = serialization.load_pem_public_key(_read_pem(path, "OTC_JWT_PUBLIC_KEY_FILE"))
    except ValueError as exc:
        raise AuthConfigError(f"OTC_JWT_PUBLIC_KEY_FILE: {path} is not a PEM key: {exc}") from None
    if not isinstance(key, RSAPublicKey):
        raise AuthConfigError(f"OTC_JWT_PUBLIC_KEY_FILE: {path} is not an RSA public key")
    return key


def read_private_pem(path: Path) -> RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(
            _read_pem(path, "OTC_JWT_PRIVATE_KEY_FILE"), password=None
        )
    except (ValueError, TypeError) as exc:
        raise AuthConfigError(
            f"OTC_JWT_PRIVATE_KEY_FILE: {path} is not an unencrypted PEM key: {exc}"
        ) from None
    if not isinstance(key, RSAPrivateKey):
        raise AuthConfigError(f"OTC_JWT_PRIVATE_KEY_FILE: {path} is not an RSA private key")
    return key


def rs256_key_file(settings: Settings) -> tuple[Literal["pem", "jwks"], Path]:
    pem, jwks = settings.jwt_public_key_file, settings.jwks_file
    if pem is not None and jwks is not None:
        raise AuthConfigError("set OTC_JWT_PUBLIC_KEY_FILE or OTC_JWKS_FILE, not both")
    if pem is not None:
        return "pem", pem
    if jwks is not None:
        return "jwks", jwks
    raise AuthConfigError("OTC_JWT_ALGORITHM=RS256 needs OTC_JWT_PUBLIC_KEY_FILE or OTC_JWKS_FILE")
