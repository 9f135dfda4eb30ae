"""Bearer tokens: HS256 by default, RS256 with a PEM key or a JWKS file; every
token that is not exactly what the configuration asks for is a 401."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from pydantic import SecretStr
from typer.testing import CliRunner

from otc.auth import (
    AuthConfigError,
    Principal,
    Role,
    TokenMinter,
    TokenVerifier,
    Unauthorized,
    mint_token,
    verify_token,
)
from otc.settings import DEV_JWT_SECRET, Settings, get_settings
from stack.cli import app

SECRET = "a-test-secret-that-is-long-enough-for-hs256"
NOW = datetime.now(UTC)
HOUR = timedelta(hours=1)


@pytest.fixture(scope="module")
def keys() -> dict[str, RSAPrivateKey]:
    return {
        kid: rsa.generate_private_key(public_exponent=65537, key_size=2048)
        for kid in ("k1", "k2", "stranger")
    }


def _public_pem(key: RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _private_pem(key: RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _jwk(kid: str, key: RSAPrivateKey) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return jwk | {"kid": kid, "use": "sig", "alg": "RS256"}


def _write_jwks(path: Path, keys: dict[str, RSAPrivateKey]) -> Path:
    stamp = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(json.dumps({"keys": [_jwk(kid, key) for kid, key in keys.items()]}))
    # a rewrite within the file system's timestamp granularity must still count
    os.utime(path, ns=(stamp + 1_000_000_000, stamp + 1_000_000_000))
    return path


def _claims(**over: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {"sub": "TRADER-A", "role": "trader", "iat": NOW, "exp": NOW + HOUR}
    claims.update(over)
    return {k: v for k, v in claims.items() if v is not None}


def _rs256(key: RSAPrivateKey, kid: str | None = None, **over: Any) -> str:
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(_claims(**over), key, algorithm="RS256", headers=headers)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forged(header: dict[str, Any], hmac_key: bytes | None) -> str:
    """A token made by hand, as an attacker would, without the library's guards."""
    claims = {"sub": "TRADER-A", "role": "admin", "exp": int((NOW + HOUR).timestamp())}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    if hmac_key is None:
        return f"{signing_input}."
    signature = hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _refused(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(Unauthorized) as refused:
        verifier.verify(token)
    assert refused.value.status == 401
    return refused.value.message


@pytest.fixture
def hs256() -> TokenVerifier:
    return TokenVerifier.from_settings(Settings(jwt_secret=SecretStr(SECRET)))


@pytest.fixture
def pem_settings(tmp_path: Path, keys: dict[str, RSAPrivateKey]) -> Settings:
    (tmp_path / "public.pem").write_bytes(_public_pem(keys["k1"]))
    return Settings(
        jwt_algorithm="RS256",
        jwt_public_key_file=tmp_path / "public.pem",
        jwt_secret=SecretStr(SECRET),
    )


@pytest.fixture
def jwks_file(tmp_path: Path, keys: dict[str, RSAPrivateKey]) -> Path:
    return _write_jwks(tmp_path / "jwks.json", {"k1": keys["k1"], "k2": keys["k2"]})


@pytest.fixture
def jwks(jwks_file: Path) -> TokenVerifier:
    return TokenVerifier.from_settings(Settings(jwt_algorithm="RS256", jwks_file=jwks_file))


# HS256, the default


def test_hs256_tokens_minted_by_the_platform_verify(hs256: TokenVerifier) -> None:
    token = mint_token("MM-1", Role.MARKET_MAKER, secret=SECRET, now=NOW, ttl=HOUR)
    assert hs256.verify(token) == Principal("MM-1", Role.MARKET_MAKER)
    assert verify_token(token, secret=SECRET) == Principal("MM-1", Role.MARKET_MAKER)


def test_a_token_signed_with_another_secret_is_refused(hs256: TokenVerifier) -> None:
    token = mint_token("TRADER-A", Role.TRADER, secret="x" * 40, now=NOW, ttl=HOUR)
    assert "Signature verification failed" in _refused(hs256, token)


def test_an_expired_token_is_refused(hs256: TokenVerifier) -> None:
    token = mint_token("TRADER-A", Role.TRADER, secret=SECRET, now=NOW - 2 * HOUR, ttl=HOUR)
    assert _refused(hs256, token) == "token has expired"


@pytest.mark.parametrize("claim", ["sub", "role", "exp"])
def test_a_token_missing_a_claim_is_refused(hs256: TokenVerifier, claim: str) -> None:
    token = jwt.encode(_claims(**{claim: None}), SECRET, algorithm="HS256")
    assert f'"{claim}"' in _refused(hs256, token)


def test_an_unknown_role_is_refused(hs256: TokenVerifier) -> None:
    token = jwt.encode(_claims(role="superuser"), SECRET, algorithm="HS256")
    assert _refused(hs256, token) == "unknown role 'superuser'"


def test_an_empty_party_is_refused(hs256: TokenVerifier) -> None:
    token = jwt.encode(_claims(sub=""), SECRET, algorithm="HS256")
    assert _refused(hs256, token) == "token has no party"


def test_garbage_is_refused(hs256: TokenVerifier) -> None:
    assert _refused(hs256, "not-a-token").startswith("invalid token")


def test_an_unsigned_token_is_refused(hs256: TokenVerifier) -> None:
    token = _forged({"alg": "none", "typ": "JWT"}, None)
    assert "'none' is not accepted" in _refused(hs256, token)


def test_an_rs256_token_is_refused_when_hs256_is_configured(
    hs256: TokenVerifier, keys: dict[str, RSAPrivateKey]
) -> None:
    assert "'RS256' is not accepted" in _refused(hs256, _rs256(keys["k1"]))


# RS256 with one PEM public key


def test_rs256_tokens_verify_with_the_public_key(
    pem_settings: Settings, keys: dict[str, RSAPrivateKey]
) -> None:
    verifier = TokenVerifier.from_settings(pem_settings)
    assert verifier.verify(_rs256(keys["k1"])) == Principal("TRADER-A", Role.TRADER)


def test_rs256_refuses_a_token_signed_by_another_key(
    pem_settings: Settings, keys: dict[str, RSAPrivateKey]
) -> None:
    verifier = TokenVerifier.from_settings(pem_settings)
    assert "Signature verification failed" in _refused(verifier, _rs256(keys["stranger"]))


def test_rs256_refuses_hs256_tokens_even_with_the_shared_secret(pem_settings: Settings) -> None:
    verifier = TokenVerifier.from_settings(pem_settings)
    token = mint_token("TRADER-A", Role.ADMIN, secret=SECRET, now=NOW, ttl=HOUR)
    assert "'HS256' is not accepted" in _refused(verifier, token)


def test_rs256_refuses_an_hmac_signed_with_the_public_key(
    pem_settings: Settings, keys: dict[str, RSAPrivateKey]
) -> None:
    """Algorithm confusion: the public key is public, so anyone can HMAC with it."""
    verifier = TokenVerifier.from_settings(pem_settings)
    token = _forged({"alg": "HS256", "typ": "JWT"}, _public_pem(keys["k1"]))
    assert "'HS256' is not accepted" in _refused(verifier, token)


def test_rs256_refuses_an_unsigned_token(pem_settings: Settings) -> None:
    verifier = TokenVerifier.from_settings(pem_settings)
    token = _forged({"alg": "none", "typ": "JWT"}, None)
    assert "'none' is not accepted" in _refused(verifier, token)


def test_rs256_refuses_expired_tokens_and_unknown_roles(
    pem_settings: Settings, keys: dict[str, RSAPrivateKey]
) -> None:
    verifier = TokenVerifier.from_settings(pem_settings)
    expired = _rs256(keys["k1"], iat=NOW - 2 * HOUR, exp=NOW - HOUR)
    assert _refused(verifier, expired) == "token has expired"
    assert _refused(verifier, _rs256(keys["k1"], role="root")) == "unknown role 'root'"


# RS256 with a JWKS file


def test_jwks_picks_the_key_named_by_the_kid(
    jwks: TokenVerifier, keys: dict[str, RSAPrivateKey]
) -> None:
    assert jwks.verify(_rs256(keys["k1"], "k1", sub="TRADER-A")).party == "TRADER-A"
    assert jwks.verify(_rs256(keys["k2"], "k2", sub="TRADER-B")).party == "TRADER-B"


def test_jwks_refuses_a_kid_naming_the_wrong_key(
    jwks: TokenVerifier, keys: dict[str, RSAPrivateKey]
) -> None:
    assert "Signature verification failed" in _refused(jwks, _rs256(keys["k1"], "k2"))


def test_jwks_refuses_an_unknown_kid(jwks: TokenVerifier, keys: dict[str, RSAPrivateKey]) -> None:
    assert _refused(jwks, _rs256(keys["stranger"], "k9")) == "unknown signing key id 'k9'"


def test_jwks_refuses_a_token_without_kid(
    jwks: TokenVerifier, keys: dict[str, RSAPrivateKey]
) -> None:
    assert "no kid" in _refused(jwks, _rs256(keys["k1"]))


def test_jwks_refuses_an_hmac_signed_with_a_published_key(
    jwks: TokenVerifier, keys: dict[str, RSAPrivateKey]
) -> None:
    token = _forged({"alg": "HS256", "kid": "k1"}, _public_pem(keys["k1"]))
    assert "'HS256' is not accepted" in _refused(jwks, token)


def test_a_rewritten_key_set_rotates_keys_without_a_restart(
    jwks: TokenVerifier, jwks_file: Path, keys: dict[str, RSAPrivateKey]
) -> None:
    old, new = _rs256(keys["k1"], "k1"), _rs256(keys["k2"], "k2")
    assert jwks.verify(old).party == jwks.verify(new).party == "TRADER-A"

    _write_jwks(jwks_file, {"k2": keys["k2"], "k3": keys["stranger"]})

    assert _refused(jwks, old) == "unknown signing key id 'k1'"
    assert jwks.verify(new).party == "TRADER-A"
    assert jwks.verify(_rs256(keys["stranger"], "k3")).party == "TRADER-A"


def test_a_broken_rewrite_keeps_the_previous_keys(
    jwks: TokenVerifier, jwks_file: Path, keys: dict[str, RSAPrivateKey]
) -> None:
    jwks_file.write_text("{not json")
    os.utime(jwks_file, ns=(1, 1))
    assert jwks.verify(_rs256(keys["k1"], "k1")).party == "TRADER-A"


@pytest.mark.parametrize(
    ("document", "error"),
    [
        ("[]", "no 'keys' list"),
        ('{"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}]}', "no RS256 signature key"),
        ("{not json", "cannot read"),
    ],
)
def test_an_unusable_key_set_stops_the_service_at_start(
    tmp_path: Path, document: str, error: str
) -> None:
    (tmp_path / "jwks.json").write_text(document)
    with pytest.raises(AuthConfigError, match=error):
        TokenVerifier.from_settings(
            Settings(jwt_algorithm="RS256", jwks_file=tmp_path / "jwks.json")
        )


def test_two_keys_with_one_kid_are_refused(tmp_path: Path, keys: dict[str, RSAPrivateKey]) -> None:
    jwks = {"keys": [_jwk("k1", keys["k1"]), _jwk("k1", keys["k2"])]}
    (tmp_path / "jwks.json").write_text(json.dumps(jwks))
    with pytest.raises(AuthConfigError, match="share the kid"):
        TokenVerifier.from_settings(
            Settings(jwt_algorithm="RS256", jwks_file=tmp_path / "jwks.json")
        )


# issuer and audience


def test_issuer_and_audience_are_checked_when_configured(
    pem_settings: Settings, keys: dict[str, RSAPrivateKey]
) -> None:
    settings = pem_settings.model_copy(update={"jwt_issuer": "idp", "jwt_audience": "otc"})
    verifier = TokenVerifier.from_settings(settings)
    assert verifier.verify(_rs256(keys["k1"], iss="idp", aud="otc")).party == "TRADER-A"
    assert "iss" in _refused(verifier, _rs256(keys["k1"], aud="otc"))
    assert "aud" in _refused(verifier, _rs256(keys["k1"], iss="idp"))
    assert "issuer" in _refused(verifier, _rs256(keys["k1"], iss="evil", aud="otc"))
    assert "Audience" in _refused(verifier, _rs256(keys["k1"], iss="idp", aud="elsewhere"))


# configuration


@pytest.mark.parametrize(
    ("over", "error"),
    [
        ({"jwt_algorithm": "RS256"}, "needs OTC_JWT_PUBLIC_KEY_FILE or OTC_JWKS_FILE"),
        (
            {"jwt_algorithm": "RS256", "jwks_file": "j", "jwt_public_key_file": "p"},
            "not both",
        ),
        ({"jwks_file": "j"}, "OTC_JWT_ALGORITHM is HS256"),
        ({"jwt_algorithm": "RS256", "jwt_public_key_file": "/nonexistent"}, "cannot read"),
    ],
)
def test_settings_that_cannot_work_are_refused(over: dict[str, Any], error: str) -> None:
    with pytest.raises(AuthConfigError, match=error):
        TokenVerifier.from_settings(Settings(**over))


def test_production_refuses_the_development_secret_only_for_hs256(
    pem_settings: Settings,
) -> None:
    with pytest.raises(ValueError, match="OTC_JWT_SECRET must be set"):
        Settings(env="production")
    rs256 = Settings(
        env="production",
        jwt_algorithm="RS256",
        jwt_public_key_file=pem_settings.jwt_public_key_file,
    )
    assert rs256.jwt_secret.get_secret_value() == DEV_JWT_SECRET


# minting


def test_the_minter_signs_rs256_with_the_kid_of_its_key(
    jwks_file: Path, tmp_path: Path, keys: dict[str, RSAPrivateKey]
) -> None:
    (tmp_path / "private.pem").write_bytes(_private_pem(keys["k2"]))
    settings = Settings(
        jwt_algorithm="RS256",
        jwks_file=jwks_file,
        jwt_private_key_file=tmp_path / "private.pem",
        jwt_issuer="idp",
    )
    token = TokenMinter.from_settings(settings).mint("ADMIN", Role.ADMIN, now=NOW, ttl=HOUR)
    assert jwt.get_unverified_header(token)["kid"] == "k2"
    assert TokenVerifier.from_settings(settings).verify(token) == Principal("ADMIN", Role.ADMIN)


def test_the_minter_refuses_a_private_key_no_verifier_knows(
    jwks_file: Path, tmp_path: Path, keys: dict[str, RSAPrivateKey]
) -> None:
    (tmp_path / "private.pem").write_bytes(_private_pem(keys["stranger"]))
    settings = Settings(
        jwt_algorithm="RS256", jwks_file=jwks_file, jwt_private_key_file=tmp_path / "private.pem"
    )
    with pytest.raises(AuthConfigError, match="matches none"):
        TokenMinter.from_settings(settings)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def test_otc_token_mints_hs256_by_default(env: pytest.MonkeyPatch) -> None:
    env.setenv("OTC_JWT_SECRET", SECRET)
    result = CliRunner().invoke(app, ["token", "--party", "MM-2", "--role", "market_maker"])
    assert result.exit_code == 0, result.output
    assert verify_token(result.output.strip(), secret=SECRET) == Principal(
        "MM-2", Role.MARKET_MAKER
    )


def test_otc_token_explains_it_cannot_mint_rs256_without_a_private_key(
    env: pytest.MonkeyPatch, pem_settings: Settings
) -> None:
    env.setenv("OTC_JWT_ALGORITHM", "RS256")
    env.setenv("OTC_JWT_PUBLIC_KEY_FILE", str(pem_settings.jwt_public_key_file))
    result = CliRunner().invoke(app, ["token"])
    assert result.exit_code == 1
    assert "cannot mint" in result.output
    assert "OTC_JWT_PRIVATE_KEY_FILE" in result.output


def test_otc_token_mints_rs256_with_the_private_key(
    env: pytest.MonkeyPatch, pem_settings: Settings, tmp_path: Path, keys: dict[str, RSAPrivateKey]
) -> None:
    (tmp_path / "private.pem").write_bytes(_private_pem(keys["k1"]))
    env.setenv("OTC_JWT_ALGORITHM", "RS256")
    env.setenv("OTC_JWT_PUBLIC_KEY_FILE", str(pem_settings.jwt_public_key_file))
    env.setenv("OTC_JWT_PRIVATE_KEY_FILE", str(tmp_path / "private.pem"))
    result = CliRunner().invoke(app, ["token", "--party", "AUDITOR", "--role", "auditor"])
    assert result.exit_code == 0, result.output
    verifier = TokenVerifier.from_settings(pem_settings)
    assert verifier.verify(result.output.strip()) == Principal("AUDITOR", Role.AUDITOR)
