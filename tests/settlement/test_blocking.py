"""Blocking accounts, judged on the in-memory unit of work: what is refused commits
nothing, and blocking an account not opened yet opens it first."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

import pytest

from otc.errors import NotFound
from otc.fake_unit_of_work import FakeUnitOfWork
from settlement.adapters.repository import AccountRow
from settlement.domain.ledger import Account
from settlement.service_layer import funding


def _open(account: Account) -> AccountRow:
    return AccountRow(account, Decimal(0), blocked=False, blocked_reason="")


class FakeLedger:
    """The balance rows `set_blocked` reads and writes, in memory."""

    def __init__(self, *accounts: Account) -> None:
        self.rows = {a: _open(a) for a in accounts}

    async def accounts(self, party: str | None = None) -> list[AccountRow]:
        return [r for a, r in sorted(self.rows.items()) if party in (None, a.party)]

    async def create_accounts(self, accounts: Iterable[Account]) -> list[Account]:
        created = sorted(set(accounts) - set(self.rows))
        for a in created:
            self.rows[a] = _open(a)
        return created

    async def set_blocked(
        self, accounts: Iterable[Account], blocked: bool, reason: str
    ) -> list[Account]:
        changed = sorted(set(accounts) & set(self.rows))
        for a in changed:
            self.rows[a] = AccountRow(a, Decimal(0), blocked, reason if blocked else "")
        return changed


async def test_blocking_a_party_without_accounts_is_refused_and_commits_nothing() -> None:
    uow = FakeUnitOfWork(producer="settlement", ledger=FakeLedger(Account("OTHER", "USD")))
    with pytest.raises(NotFound, match="no accounts"):
        await funding.set_blocked(uow, "NOBODY", None, blocked=True)
    assert uow.commits == 0


async def test_blocking_an_account_not_opened_yet_opens_it_blocked() -> None:
    ledger = FakeLedger()
    uow = FakeUnitOfWork(producer="settlement", ledger=ledger)
    blocked = await funding.set_blocked(uow, "P", "ETH", blocked=True, reason="KYC")
    assert blocked == [Account("P", "ETH")]
    assert ledger.rows[Account("P", "ETH")].blocked_reason == "KYC"
    assert uow.commits == 1


async def test_unblocking_every_account_of_a_party_clears_the_reasons() -> None:
    ledger = FakeLedger(Account("P", "USD"), Account("P", "BTC"), Account("Q", "USD"))
    uow = FakeUnitOfWork(producer="settlement", ledger=ledger)
    await funding.set_blocked(uow, "P", None, blocked=True, reason="sanctions")
    unblocked = await funding.set_blocked(uow, "P", None, blocked=False, reason="cleared")
    assert unblocked == [Account("P", "BTC"), Account("P", "USD")]
    assert [(r.account, r.blocked, r.blocked_reason) for r in await ledger.accounts()] == [
        (Account("P", "BTC"), False, ""),
        (Account("P", "USD"), False, ""),
        (Account("Q", "USD"), False, ""),
    ]
    assert uow.commits == 2
