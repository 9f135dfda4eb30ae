"""Market-maker protection (MMP): when a maker is hit too often or for too much
within a rolling window, it stops quoting until it resets. The window itself is
kept in Redis (shared by every process serving the maker, and surviving their
restarts); this is the arithmetic on what it holds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class ProtectionLimits:
    window: timedelta
    max_accepts: int
    max_notional: Decimal  # in the instruments' quote currency

    def breach(self, notionals: list[Decimal]) -> str | None:
        """Why the maker must halt, given the notionals accepted within the window."""
        seconds = self.window.total_seconds()
        if len(notionals) > self.max_accepts:
            return (
                f"{len(notionals)} quotes accepted within {seconds:g} s (limit {self.max_accepts})"
            )
        total = sum(notionals, Decimal(0))
        if total > self.max_notional:
            return f"notional {total} accepted within {seconds:g} s (limit {self.max_notional})"
        return None
