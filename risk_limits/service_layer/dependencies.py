"""What every handler needs from outside: the database, the clock, the settings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from otc.clock import Clock

from .unit_of_work import UnitOfWork


@dataclass(frozen=True, slots=True)
class Dependencies:
    engine: AsyncEngine
    clock: Clock
    reservation_ttl: timedelta

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.engine)
