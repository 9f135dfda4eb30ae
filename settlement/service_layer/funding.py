"""What an admin does to the ledger: deposits and withdrawals, each a journal
against the outside world, and blocking or unblocking accounts.

A funding move is idempotent on its reference: the same reference with the same
move is a no-op, with another move a conflict. A blocked account moves nothing,
neither by trade nor by funding, until it is unblocked.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC
from decimal import Decimal

from otc.errors import Conflict, NotFound, ValidationFailed
from otc.instruments import INSTRUMENTS
from otc.logging import get_logger
from otc.money import InvalidDecimal, fmt, parse_decimal
from settlement.adapters.repository import AccountRow
from settlement.domain.ledger import (
    EXTERNAL,
    Account,
    JournalKind,
    first_blocked,
    first_shortfall,
    funding_postings,
)
from settlement.service_layer.unit_of_work import SettlementUnitOfWork

log = get_logger(__name__)

ASSETS = frozenset(a for i in INSTRUMENTS.values() for a in (i.base, i.quote))


@dataclass(frozen=True, slots=True)
class Funding:
    account: Account
    amount: Decimal  # signed: what the move did to the balance
    booked: bool  # False: this reference was booked before, nothing moved now


def valid_account(party: str, asset: str) -> Account:
    if not party.strip() or party.startswith("@"):
        raise ValidationFailed(f"not a party id: {party!r}")
    if asset not in ASSETS:
        raise ValidationFailed(f"unknown asset {asset!r}; known: {', '.join(sorted(ASSETS))}")
    return Account(party, asset)


def _positive(amount: str) -> Decimal:
    try:
        return parse_decimal(amount, field="amount", positive=True)
    except InvalidDecimal as exc:
        raise ValidationFailed(str(exc)) from None


async def deposit(
    uow: SettlementUnitOfWork, party: str, asset: str, amount: str, reference: str, memo: str = ""
) -> Funding:
    return await _fund(
        uow, JournalKind.DEPOSIT, valid_account(party, asset), _positive(amount), reference, memo
    )


async def withdraw(
    uow: SettlementUnitOfWork, party: str, asset: str, amount: str, reference: str, memo: str = ""
) -> Funding:
    return await _fund(
        uow,
        JournalKind.WITHDRAWAL,
        valid_account(party, asset),
        -_positive(amount),
        reference,
        memo,
    )


async def _fund(
    uow: SettlementUnitOfWork,
    kind: JournalKind,
    account: Account,
    amount: Decimal,
    reference: str,
    memo: str,
) -> Funding:
    if not reference.strip():
        raise ValidationFailed("reference must not be empty")
    postings = funding_postings(account.party, account.asset, amount)
    async with uow:
        ledger = uow.ledger
        holdings = await ledger.lock_accounts([account])
        earlier = await ledger.journal_postings(kind, reference)
        if earlier is not None:
            if Counter(earlier) != Counter(postings):
                raise Conflict(f"reference {reference!r} was used for another {kind.value}")
            return Funding(account, amount, booked=False)
        blocked = first_blocked(holdings.blocked, postings)
        if blocked is not None:
            raise Conflict(f"{kind.value} refused: {blocked.describe()}", code="account_blocked")
        shortfall = first_shortfall(holdings.balances, postings)
        if shortfall is not None:
            raise Conflict(f"{kind.value} refused: {shortfall.describe()}", code="insufficient")
        now = uow.clock.now()
        await ledger.post_journal(
            kind,
            reference,
            postings,
            value_date=now.astimezone(UTC).date(),
            booked_at=now,
            memo=memo,
        )
        await uow.commit()
    log.info(
        f"{kind.value} booked",
        party=account.party,
        asset=account.asset,
        amount=fmt(amount),
        reference=reference,
    )
    return Funding(account, amount, booked=True)


async def set_blocked(
    uow: SettlementUnitOfWork, party: str, asset: str | None, *, blocked: bool, reason: str = ""
) -> list[Account]:
    """Blocks (or unblocks) one account, or every account of the party when `asset`
    is None. Blocking an account that does not exist yet opens it empty, so that
    nothing can ever be credited to it unnoticed."""
    async with uow:
        ledger = uow.ledger
        if asset is None:
            targets = [row.account for row in await ledger.accounts(party)]
            if not targets:
                raise NotFound(f"{party} has no accounts")
        else:
            targets = [valid_account(party, asset)]
            if blocked:
                await ledger.create_accounts(targets)
        changed = await ledger.set_blocked(targets, blocked, reason)
        if not changed:
            raise NotFound(f"no account {party} {asset}")
        await uow.commit()
    log.info(
        "accounts blocked" if blocked else "accounts unblocked",
        party=party,
        accounts=[a.asset for a in changed],
        reason=reason,
    )
    return changed


async def accounts(uow: SettlementUnitOfWork, party: str | None) -> list[AccountRow]:
    if party is not None and party == EXTERNAL:
        raise ValidationFailed(f"{EXTERNAL} has postings but no balance")
    async with uow:
        return await uow.ledger.accounts(party)
