"""Shared pieces of the end-to-end tests: tokens and a trader client on the platform."""

from __future__ import annotations

from datetime import timedelta

from otc.auth import Role, mint_token
from otc.clock import SystemClock
from otc.infra.platform import Platform


def token_for(platform: Platform, party: str, role: Role = Role.TRADER) -> str:
    return mint_token(
        party,
        role,
        secret=platform.settings.jwt_secret.get_secret_value(),
        now=SystemClock().now(),
        ttl=timedelta(hours=1),
    )


def base_url(platform: Platform) -> str:
    return f"http://127.0.0.1:{platform.http_port}"
