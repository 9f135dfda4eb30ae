"""The ledger's SQL: accounts (balances and blocks) and journals with their postings.

A balance is kept beside the postings that explain it and moved in the same
transaction as they are written; the end-of-day reconciliation checks that the
two agree. `@external` has postings but no balance row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy import bindparam, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from settlement.adapters.tables import balances, journals, ledger_entries
from settlement.domain.ledger import (
    EXTERNAL,
    Account,
    JournalKind,
    Posting,
    funding_postings,
    net_by_account,
)


@dataclass(frozen=True, slots=True)
class Holdings:
    balances: dict[Account, Decimal]
    blocked: dict[Account, str]  # blocked account -> why


@dataclass(frozen=True, slots=True)
class AccountRow:
    account: Account
    amount: Decimal
    blocked: bool
    blocked_reason: str


class LedgerRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def lock_accounts(self, accounts: Iterable[Account]) -> Holdings:
        """Locks the existing balance rows of these accounts and returns them.

        Rows are locked in (party, asset) order, byte-wise like Python's `sorted`, so
        two bookings that touch the same accounts queue behind each other instead of
        deadlocking.
        """
        b = balances
        wanted = sorted({a for a in accounts if a.party != EXTERNAL})
        if not wanted:
            return Holdings({}, {})
        rows = await self._conn.execute(
            select(b.c.party, b.c.asset, b.c.amount, b.c.blocked, b.c.blocked_reason)
            .where(tuple_(b.c.party, b.c.asset).in_(wanted))
            .order_by(b.c.party.collate("C"), b.c.asset.collate("C"))
            .with_for_update()
        )
        held, blocked = {}, {}
        for r in rows:
            held[Account(r.party, r.asset)] = r.amount
            if r.blocked:
                blocked[Account(r.party, r.asset)] = r.blocked_reason
        return Holdings(held, blocked)

    async def post_journal(
        self,
        kind: JournalKind,
        reference: str,
        postings: Iterable[Posting],
        *,
        value_date: date,
        booked_at: datetime,
        memo: str = "",
    ) -> bool:
        """Writes the journal and its postings and moves the balances; False, moving
        nothing, when a journal of this kind and reference exists already.

        Debits update rows that `lock_accounts` holds; credits are upserts, because a
        receiving account may not exist yet. PostgreSQL checks a row proposed for
        insertion before resolving the conflict, so only credits, never negative
        amounts, may go through the upsert. The balance check constraint is the last
        guard against an overdraft.
        """
        created = await self._conn.execute(
            insert(journals)
            .values(
                kind=kind.value,
                reference=reference,
                memo=memo,
                value_date=value_date,
                booked_at=booked_at,
            )
            .on_conflict_do_nothing(index_elements=[journals.c.kind, journals.c.reference])
            .returning(journals.c.journal_id)
        )
        journal_id = created.scalar()
        if journal_id is None:
            return False
        postings = tuple(postings)
        await self._move_balances(postings)
        trade_id = reference if kind is JournalKind.TRADE else None
        await self._conn.execute(
            insert(ledger_entries),
            [
                {
                    "journal_id": journal_id,
                    "trade_id": trade_id,
                    "party": p.party,
                    "asset": p.asset,
                    "amount": p.amount,
                    "booked_at": booked_at,
                }
                for p in postings
            ],
        )
        return True

    async def journal_postings(self, kind: JournalKind, reference: str) -> list[Posting] | None:
        """The postings of a journal, or None when there is no such journal."""
        j, e = journals, ledger_entries
        rows = (
            await self._conn.execute(
                select(j.c.journal_id, e.c.party, e.c.asset, e.c.amount)
                .select_from(j.outerjoin(e, e.c.journal_id == j.c.journal_id))
                .where(j.c.kind == kind.value, j.c.reference == reference)
                .order_by(e.c.id)
            )
        ).all()
        if not rows:
            return None
        return [Posting(r.party, r.asset, r.amount) for r in rows if r.party is not None]

    async def _move_balances(self, postings: tuple[Posting, ...]) -> None:
        nets = {a: n for a, n in net_by_account(postings).items() if a.party != EXTERNAL}
        debits = [(account, amount) for account, amount in nets.items() if amount < 0]
        credits = [(account, amount) for account, amount in nets.items() if amount > 0]
        if debits:
            await self._conn.execute(
                update(balances)
                .where(
                    balances.c.party == bindparam("debit_party"),
                    balances.c.asset == bindparam("debit_asset"),
                )
                .values(amount=balances.c.amount + bindparam("debit_amount")),
                [
                    {"debit_party": a.party, "debit_asset": a.asset, "debit_amount": amount}
                    for a, amount in debits
                ],
            )
        if credits:
            upsert = insert(balances).values(
                [{"party": a.party, "asset": a.asset, "amount": amount} for a, amount in credits]
            )
            await self._conn.execute(
                upsert.on_conflict_do_update(
                    index_elements=[balances.c.party, balances.c.asset],
                    set_={"amount": balances.c.amount + upsert.excluded.amount},
                )
            )

    async def create_accounts(self, accounts: Iterable[Account]) -> list[Account]:
        """Creates empty accounts that do not exist yet; returns those it created."""
        wanted = sorted(set(accounts))
        if not wanted:
            return []
        created = await self._conn.execute(
            insert(balances)
            .values([{"party": a.party, "asset": a.asset, "amount": 0} for a in wanted])
            .on_conflict_do_nothing(index_elements=[balances.c.party, balances.c.asset])
            .returning(balances.c.party, balances.c.asset)
        )
        return sorted(Account(r.party, r.asset) for r in created)

    async def set_blocked(
        self, accounts: Iterable[Account], blocked: bool, reason: str
    ) -> list[Account]:
        """Flags (or clears) these existing accounts; returns those it changed."""
        wanted = sorted(set(accounts))
        if not wanted:
            return []
        changed = await self._conn.execute(
            update(balances)
            .where(tuple_(balances.c.party, balances.c.asset).in_(wanted))
            .values(blocked=blocked, blocked_reason=reason if blocked else "")
            .returning(balances.c.party, balances.c.asset)
        )
        return sorted(Account(r.party, r.asset) for r in changed)

    async def accounts(self, party: str | None = None) -> list[AccountRow]:
        query = select(balances).order_by(
            balances.c.party.collate("C"), balances.c.asset.collate("C")
        )
        if party is not None:
            query = query.where(balances.c.party == party)
        return [
            AccountRow(Account(r.party, r.asset), r.amount, r.blocked, r.blocked_reason)
            for r in await self._conn.execute(query)
        ]

    async def open_accounts(
        self, amounts: Mapping[Account, Decimal], *, booked_at: datetime
    ) -> list[Account]:
        """Opens the accounts that do not exist yet with these amounts, each by a
        deposit journal; existing ones keep their amount, because the ledger already
        explains them. Returns the accounts it opened."""
        opened = await self.create_accounts(amounts)
        for account in opened:
            amount = amounts[account]
            if amount:
                await self.post_journal(
                    JournalKind.DEPOSIT,
                    f"opening:{account.party}:{account.asset}",
                    funding_postings(account.party, account.asset, amount),
                    value_date=booked_at.astimezone(UTC).date(),
                    booked_at=booked_at,
                    memo="opening balance",
                )
        return opened
