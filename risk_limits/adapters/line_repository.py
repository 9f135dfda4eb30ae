"""SQL of credit lines (gross and bilateral) and of reference rates, over one
connection of a unit of work.

Correctness under concurrency lives in the statements themselves. A freeze is a
conditional UPDATE that matches only when the credit is there: Postgres re-checks
the condition on the newest row version after waiting for a concurrent writer, so
there is no window between reading what is available and taking it. Every later
movement of held credit is one UPDATE of one row. Gross and bilateral lines live
in two tables with the same columns; a LineKey picks the table and the row.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Row, Table, and_, literal, or_, select, tuple_, union_all
from sqlalchemy import update as sql_update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from risk_limits.domain.credit import GROSS, CreditLine, Hold, LineKey
from risk_limits.domain.reservation import Movement

from .tables import bilateral_lines, credit_lines, reference_rates


class CreditLineRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def currencies(self, keys: Iterable[LineKey]) -> dict[LineKey, str]:
        """The currency of each of `keys` that exists; one round trip for all."""
        keys = list(keys)
        gross, bilateral = credit_lines.c, bilateral_lines.c
        stmt = union_all(
            select(gross.party, literal(GROSS).label("counterparty"), gross.currency).where(
                gross.party.in_([k.party for k in keys if k.is_gross])
            ),
            select(bilateral.party, bilateral.counterparty, bilateral.currency).where(
                tuple_(bilateral.party, bilateral.counterparty).in_(
                    [(k.party, k.counterparty) for k in keys if not k.is_gross]
                )
            ),
        )
        rows = await self._conn.execute(stmt)
        return {LineKey(row.party, row.counterparty): row.currency for row in rows}

    async def get(self, key: LineKey) -> CreditLine | None:
        table, where = _row(key)
        row = (await self._conn.execute(select(table).where(*where))).first()
        return None if row is None else _credit_line(row)

    async def upsert(
        self, key: LineKey, currency: str, limit: Decimal, now: datetime
    ) -> CreditLine | None:
        """Creates or resizes a line. None when the line exists in another currency
        and still carries used or frozen credit, which a new currency would misprice."""
        table, _ = _row(key)
        values: dict[str, Any] = {"party": key.party, "currency": currency}
        if not key.is_gross:
            values["counterparty"] = key.counterparty
        stmt = insert(table).values(**values, credit_limit=limit, updated_at=now)
        stmt = stmt.on_conflict_do_update(
            index_elements=list(table.primary_key.columns),
            set_={
                "currency": stmt.excluded.currency,
                "credit_limit": stmt.excluded.credit_limit,
                "updated_at": stmt.excluded.updated_at,
            },
            where=or_(
                table.c.currency == stmt.excluded.currency,
                and_(table.c.used == 0, table.c.frozen == 0),
            ),
        )
        row = (await self._conn.execute(stmt.returning(*table.c))).first()
        return None if row is None else _credit_line(row)

    async def try_freeze(self, hold: Hold, now: datetime) -> bool:
        table, where = _row(hold.line)
        line = table.c
        result = await self._conn.execute(
            sql_update(table)
            .where(
                *where,
                line.currency == hold.currency,
                line.credit_limit - line.used - line.frozen >= hold.amount,
            )
            .values(frozen=line.frozen + hold.amount, updated_at=now)
            .returning(line.party)
        )
        return result.first() is not None

    async def move(self, hold: Hold, movement: Movement, now: datetime) -> None:
        table, where = _row(hold.line)
        line = table.c
        values: dict[str, Any] = {"updated_at": now}
        if movement is Movement.FREE_USED:
            values["used"] = line.used - hold.amount
        else:
            values["frozen"] = line.frozen - hold.amount
        if movement is Movement.COMMIT:
            values["used"] = line.used + hold.amount
        result = await self._conn.execute(
            sql_update(table)
            .where(*where, line.currency == hold.currency)
            .values(values)
            .returning(line.party)
        )
        if result.first() is None:
            raise RuntimeError(f"credit line of {hold.line} vanished or was re-denominated")


class ReferenceRateRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def get_many(self, currencies: Iterable[str]) -> dict[str, Decimal]:
        rates = reference_rates.c
        rows = await self._conn.execute(
            select(rates.currency, rates.rate_in_usd).where(rates.currency.in_(list(currencies)))
        )
        return {row.currency: row.rate_in_usd for row in rows}

    async def upsert(self, currency: str, rate_in_usd: Decimal, now: datetime) -> None:
        stmt = insert(reference_rates).values(
            currency=currency, rate_in_usd=rate_in_usd, updated_at=now
        )
        await self._conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[reference_rates.c.currency],
                set_={"rate_in_usd": stmt.excluded.rate_in_usd, "updated_at": now},
            )
        )


def _row(key: LineKey) -> tuple[Table, list[ColumnElement[bool]]]:
    if key.is_gross:
        return credit_lines, [credit_lines.c.party == key.party]
    return bilateral_lines, [
        bilateral_lines.c.party == key.party,
        bilateral_lines.c.counterparty == key.counterparty,
    ]


def _credit_line(row: Row[Any]) -> CreditLine:
    return CreditLine(
        key=LineKey(row.party, getattr(row, "counterparty", GROSS)),
        currency=row.currency,
        limit=row.credit_limit,
        used=row.used,
        frozen=row.frozen,
    )
