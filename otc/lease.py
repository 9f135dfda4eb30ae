"""How long a socket may act for its caller.

A token is checked when a socket opens, but a socket can stay open for days: without
a lease, an expired (or revoked and no longer renewed) token would keep trading for
as long as its connection lived. A lease ends when the token expires; an `auth`
message with a newer token for the same party and role moves the end to the new
token's expiry, so a client renews without dropping its session.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime

from otc.auth import Principal
from otc.errors import Forbidden

EXPIRED_CLOSE_CODE = 4401
EXPIRED_MESSAGE = "token expired: send a fresh one in an auth message before it does"


class Lease:
    def __init__(self, caller: Principal, now: Callable[[], datetime]) -> None:
        self.caller = caller
        self._now = now
        self._renewed = asyncio.Event()

    @property
    def expires_at(self) -> datetime | None:
        return self.caller.expires_at

    def renew(self, fresh: Principal) -> None:
        """Extends the lease to `fresh`'s expiry; a token of anyone else is refused."""
        if (fresh.party, fresh.role) != (self.caller.party, self.caller.role):
            raise Forbidden(
                f"a socket of {self.caller.party} ({self.caller.role.value}) cannot be "
                f"renewed with a token of {fresh.party} ({fresh.role.value})"
            )
        if fresh.expires_at is None or (
            self.caller.expires_at is not None and fresh.expires_at < self.caller.expires_at
        ):
            return  # never shortens it
        self.caller = fresh
        self._renewed.set()

    def remaining_s(self) -> float | None:
        """Seconds left; None for a token that does not expire."""
        if self.caller.expires_at is None:
            return None
        return (self.caller.expires_at - self._now()).total_seconds()

    async def ended(self) -> None:
        """Returns when the lease runs out (never, for a token without expiry)."""
        while True:
            remaining = self.remaining_s()
            if remaining is not None and remaining <= 0:
                return
            self._renewed.clear()
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a
            # cancellation that comes together with a renewal
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._renewed.wait()
