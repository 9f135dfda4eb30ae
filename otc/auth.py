"""JWT bearer tokens: `sub` is the party, `role` what it may do. HS256 with the
configured secret; `otc token` mints development tokens with the same code."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import jwt

from otc.errors import OtcError

ALGORITHM = "HS256"


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


def mint_token(party: str, role: Role, *, secret: str, now: datetime, ttl: timedelta) -> str:
    claims = {"sub": party, "role": role.value, "iat": now, "exp": now + ttl}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(token: str, *, secret: str) -> Principal:
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": ["sub", "role", "exp"]}
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("token has expired") from None
    except jwt.InvalidTokenError as exc:
        raise Unauthorized(f"invalid token: {exc}") from None
    try:
        role = Role(claims["role"])
    except ValueError:
        raise Unauthorized(f"unknown role {claims['role']!r}") from None
    party = claims["sub"]
    if not isinstance(party, str) or not party:
        raise Unauthorized("token has no party")
    return Principal(party, role)
