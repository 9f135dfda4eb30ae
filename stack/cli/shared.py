"""What the `otc` commands share: the console they print to and the token minter."""

from __future__ import annotations

from datetime import timedelta

from rich.console import Console

from otc.auth import Role, TokenMinter
from otc.clock import SystemClock
from otc.settings import get_settings

console = Console()


def mint(party: str, role: Role, ttl: timedelta | None = None) -> str:
    """A development token signed with the platform's settings."""
    settings = get_settings()
    return TokenMinter.from_settings(settings).mint(
        party,
        role,
        now=SystemClock().now(),
        ttl=ttl or timedelta(seconds=settings.jwt_ttl_s),
    )
