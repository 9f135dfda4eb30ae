"""What every handler needs from outside: the database, the clock, the settings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from otc.clock import Clock

from .unit_of_work import PRODUCER, CreditUnitOfWork


@dataclass(frozen=True, slots=True)
class Dependencies:
    engine: AsyncEngine
    clock: Clock
    reservation_ttl: timedelta

    def uow(self, *, snapshot: bool = False) -> CreditUnitOfWork:
        return CreditUnitOfWork(self.engine, producer=PRODUCER, clock=self.clock, snapshot=snapshot)
