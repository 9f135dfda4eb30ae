"""JWT bearer tokens: `sub` is the party, `role` what it may do.

One algorithm is configured and only that one is accepted: HS256 with the shared
secret (the default), or RS256 with a PEM public key or a JWKS file whose key is
picked by the token's `kid`. Pinning the algorithm is what refuses `alg: none` and
an HS256 token "signed" with the public key as a secret. `otc token` mints
development tokens with the same code. Where the keys come from is otc/auth_keys.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from otc.auth_keys import (
    HS256,
    RS256,
    Algorithm,
    JwksFile,
    KeySource,
    OneKey,
    read_jwks,
    read_private_pem,
    read_public_pem,
    rs256_key_file,
)
from otc.auth_keys import AuthConfigError as AuthConfigError
from otc.errors import Unauthorized as Unauthorized
from otc.settings import Settings


class Role(StrEnum):
    TRADER = "trader"
    MARKET_MAKER = "market_maker"
    AUDITOR = "auditor"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    party: str
    role: Role
    # when the token that named it expires: a socket's lease ends then (otc/lease.py)
    expires_at: datetime | None = field(default=None, compare=False)


class TokenVerifier:
    """Turns a bearer token into the `Principal` it names, or raises `Unauthorized`."""

    def __init__(
        self,
        algorithm: Algorithm,
        keys: KeySource,
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
        keys: KeySource
        if settings.jwt_algorithm == HS256:
            if settings.jwt_public_key_file is not None or settings.jwks_file is not None:
                raise AuthConfigError(
                    "a public key or JWKS file is set but OTC_JWT_ALGORITHM is HS256; "
                    "set OTC_JWT_ALGORITHM=RS256 to use it"
                )
            keys = OneKey(settings.jwt_secret.get_secret_value())
        else:
            kind, path = rs256_key_file(settings)
            keys = OneKey(read_public_pem(path)) if kind == "pem" else JwksFile(path)
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
        return Principal(party, role, datetime.fromtimestamp(claims["exp"], UTC))


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
        private = read_private_pem(settings.jwt_private_key_file)
        public = private.public_key().public_numbers()
        kind, path = rs256_key_file(settings)
        known = {None: read_public_pem(path)} if kind == "pem" else dict(read_jwks(path))
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
    return TokenVerifier(HS256, OneKey(secret)).verify(token)
