"""Per-party rate limiting at the edge: over the limit is a 429 `rate_limited`
that says, in Retry-After, when the same request would go through.

The buckets live in this process, so with N edge replicas a party may reach N
times the limit at most; the limit guards each replica, not a global quota.
"""

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends

from otc.auth import Principal
from otc.errors import OtcError
from otc.rate_limit import TokenBuckets


class RateLimited(OtcError):
    status = 429
    code = "rate_limited"

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"too many requests; retry in {retry_after:.2f} s")
        self.retry_after = retry_after


def enforce(buckets: TokenBuckets, caller: Principal, cost: float = 1) -> None:
    """Raises `RateLimited` when `caller` is over its limit; WebSocket requests
    call this directly, REST routes through `per_party`."""
    wait = buckets.try_take(caller.party, cost)
    if wait is not None:
        raise RateLimited(wait)


def per_party(
    buckets: TokenBuckets, authenticate: Callable[..., Awaitable[Principal]]
) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that authenticates with `authenticate`, then charges the party."""

    async def limited(caller: Annotated[Principal, Depends(authenticate)]) -> Principal:
        enforce(buckets, caller)
        return caller

    return limited
