"""JWT bearer tokens: `sub` is the party, `role` what it may do.

One algorithm is configured and only that one is accepted: HS256 with the shared
secret (the default), or RS256 with a PEM public key or a JWKS file whose key is
picked by the token's `kid`. Pinning the algorithm is what refuses `alg: none` and
an HS256 token "signed" with the public key as a secret. `otc token` mints
development tokens with the same code.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, Protocol

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from otc.errors import OtcError
from otc.logging import get_logger
from otc.settings import Settings

log = get_logger(__name__)

Algorithm = Literal["HS256", "RS256"]
HS256: Algorithm = "HS256"
RS256: Algorithm = "RS256"
VerificationKey = str | RSAPublicKey


class Role(StrEnum):
    TRADER = "trader"
    MARKET_MAKER = "market_maker"
    AUDITOR = "auditor"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    party: str
    role: Role


class Unauthorized(OtcError):
    status = 401
    code = "unauthorized"


class AuthConfigError(ValueError):
    """The token settings cannot work: a missing or unreadable key, or a clash."""


class _KeySource(Protocol):
    def key_for(self, kid: str | None) -> VerificationKey: ...


@dataclass(frozen=True, slots=True)
class _OneKey:
    key: VerificationKey

    def key_for(self, kid: str | None) -> VerificationKey:
        return self.key


class _JwksFile:
    """The RS256 keys of a JWKS file by `kid`. The file is read again when it
    changes, so a key is added or retired by rewriting the file, without a restart."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._stamp = _stamp(path)
        self._keys = _read_jwks(path)

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
            self._keys = _read_jwks(self._path)
        except (OSError, AuthConfigError) as exc:
            log.warning("key set not reloaded; the previous keys stay", error=str(exc))


def _stamp(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)
    return st.st_ino, st.st_mtime_ns, st.st_size


def _read_jwks(path: Path) -> dict[str, RSAPublicKey]:
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


def _read_public_pem(path: Path) -> RSAPublicKey:
    try:
        key = serialization.load_pem_public_key(_read_pem(path, "OTC_JWT_PUBLIC_KEY_FILE"))
    except ValueError as exc:
        raise AuthConfigError(f"OTC_JWT_PUBLIC_KEY_FILE: {path} is not a PEM key: {exc}") from None
    if not isinstance(key, RSAPublicKey):
        raise AuthConfigError(f"OTC_JWT_PUBLIC_KEY_FILE: {path} is not an RSA public key")
    return key


def _read_private_pem(path: Path) -> RSAPrivateKey:
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


def _rs256_key_file(settings: Settings) -> tuple[Literal["pem", "jwks"], Path]:
    pem, jwks = settings.jwt_public_key_file, settings.jwks_file
    if pem is not None and jwks is not None:
        raise AuthConfigError("set OTC_JWT_PUBLIC_KEY_FILE or OTC_JWKS_FILE, not both")
    if pem is not None:
        return "pem", pem
    if jwks is not None:
        return "jwks", jwks
    raise AuthConfigError("OTC_JWT_ALGORITHM=RS256 needs OTC_JWT_PUBLIC_KEY_FILE or OTC_JWKS_FILE")


class TokenVerifier:
    """Turns a bearer token into the `Principal` it names, or raises `Unauthorized`."""

    def __init__(
        self,
        algorithm: Algorithm,
        keys: _KeySource,
        *,
        issuer: str | None = None,
        audience: str | None = None,
    ) -> None:
        self._algorithm = algorithm
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._required = ["sub", "role", "exp"]
        if issuer is not None:
            self._required.append("iss")
        if audience is not None:
            self._required.append("aud")

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenVerifier:
        """Reads the key files now, so a bad one stops the service at start."""
        keys: _KeySource
        if settings.jwt_algorithm == HS256:
            if settings.jwt_public_key_file is not None or settings.jwks_file is not None:
                raise AuthConfigError(
                    "a public key or JWKS file is set but OTC_JWT_ALGORITHM is HS256; "
                    "set OTC_JWT_ALGORITHM=RS256 to use it"
                )
            keys = _OneKey(settings.jwt_secret.get_secret_value())
        else:
            kind, path = _rs256_key_file(settings)
            keys = _OneKey(_read_public_pem(path)) if kind == "pem" else _JwksFile(path)
        return cls(
            settings.jwt_algorithm,
            keys,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
        )

    def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid token: {exc}") from None
        alg = header.get("alg")
        if alg != self._algorithm:
            raise Unauthorized(
                f"token algorithm {alg!r} is not accepted; tokens must be {self._algorithm}"
            )
        kid = header.get("kid")
        key = self._keys.key_for(kid if isinstance(kid, str) else None)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[self._algorithm],
                issuer=self._issuer,
                audience=self._audience,
                options={"require": self._required},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token has expired") from None
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid token: {exc}") from None
        try:
            role = Role(claims["role"])
        except ValueError:
            raise Unauthorized(f"unknown role {claims['role']!r}") from None
        party = claims["sub"]
        if not isinstance(party, str) or not party:
            raise Unauthorized("token has no party")
        return Principal(party, role)


@dataclass(frozen=True, slots=True)
class TokenMinter:
    """Signs development tokens the configured verifier accepts."""

    algorithm: Algorithm
    key: str | RSAPrivateKey
    kid: str | None = None
    issuer: str | None = None
    audience: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenMinter:
        issuer, audience = settings.jwt_issuer, settings.jwt_audience
        if settings.jwt_algorithm == HS256:
            return cls(HS256, settings.jwt_secret.get_secret_value(), None, issuer, audience)
        if settings.jwt_private_key_file is None:
            raise AuthConfigError(
                "cannot mint: tokens are RS256 and this platform holds only public keys; "
                "set OTC_JWT_PRIVATE_KEY_FILE (development) or get a token from the issuer"
            )
        private = _read_private_pem(settings.jwt_private_key_file)
        public = private.public_key().public_numbers()
        kind, path = _rs256_key_file(settings)
        known = {None: _read_public_pem(path)} if kind == "pem" else dict(_read_jwks(path))
        for kid, key in known.items():
            if key.public_numbers() == public:
                return cls(RS256, private, kid, issuer, audience)
        raise AuthConfigError(
            "cannot mint: OTC_JWT_PRIVATE_KEY_FILE matches none of the verification keys"
        )

    def mint(self, party: str, role: Role, *, now: datetime, ttl: timedelta) -> str:
        claims: dict[str, Any] = {"sub": party, "role": role.value, "iat": now, "exp": now + ttl}
        if self.issuer is not None:
            claims["iss"] = self.issuer
        if self.audience is not None:
            claims["aud"] = self.audience
        headers = {"kid": self.kid} if self.kid is not None else None
        return jwt.encode(claims, self.key, algorithm=self.algorithm, headers=headers)


def mint_token(party: str, role: Role, *, secret: str, now: datetime, ttl: timedelta) -> str:
    return TokenMinter(HS256, secret).mint(party, role, now=now, ttl=ttl)


def verify_token(token: str, *, secret: str) -> Principal:
    return TokenVerifier(HS256, _OneKey(secret)).verify(token)
