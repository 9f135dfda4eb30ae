"""Settlement instructions: a confirmed trade waiting to settle, and the rules for
when to try it and when to give up.

A trade settles on its value date: at once for T+0, from the value-date batch for
T+n. An attempt the parties cannot meet (a shortfall, a blocked account) is
tried again after a wait that doubles each time up to a cap; after the last
allowed attempt the trade fails, with the reason of that last refusal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from settlement.domain.ledger import Refusal, Trade


@dataclass(frozen=True, slots=True)
class Instruction:
    trade: Trade
    confirmed_at: datetime  # order_core's confirmation: the trade date is its UTC date
    value_date: date
    attempts: int  # made so far
    correlation_id: str
    causation_id: str  # the TradeConfirmed message the instruction came from

    def due_by(self, now: datetime) -> bool:
        """Whether its value date has come, by the UTC date of `now`."""
        return self.value_date <= now.astimezone(UTC).date()


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int
    base_delay: timedelta
    max_delay: timedelta

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay <= timedelta(0) or self.max_delay < self.base_delay:
            raise ValueError("delays must be positive, the cap no shorter than the base")

    def delay_after(self, attempts: int) -> timedelta:
        """The wait after the `attempts`-th failed attempt: base, 2 x base, ... capped."""
        doubled: timedelta = self.base_delay * 2 ** min(attempts - 1, 32)
        return min(self.max_delay, doubled)

    def next_attempt(self, attempts: int, now: datetime) -> datetime | None:
        """When to try again after `attempts` refused attempts; None once they are spent."""
        if attempts >= self.max_attempts:
            return None
        return now + self.delay_after(attempts)


@dataclass(frozen=True, slots=True)
class Retry:
    at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class GiveUp:
    reason: str


def after_refusal(
    refused: Refusal, attempts: int, policy: RetryPolicy, now: datetime
) -> Retry | GiveUp:
    """What follows the `attempts`-th attempt, refused for `refused`."""
    why = refused.describe()
    retry_at = policy.next_attempt(attempts, now)
    if retry_at is None:
        noun = "attempt" if attempts == 1 else "attempts"
        return GiveUp(f"{why} (gave up after {attempts} {noun})")
    return Retry(retry_at, why)
