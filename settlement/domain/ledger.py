"""Delivery versus payment as pure arithmetic: what a confirmed trade moves, and
whether the parties hold enough to move it.

A trade settles both legs or neither: the buyer receives the base asset exactly
when the seller receives the quote currency. Every journal's postings sum to zero
per asset, so the ledger never creates or destroys value; money entering or
leaving the platform (a deposit, a withdrawal) is posted against `EXTERNAL`, the
world outside, which alone may go negative. A party's balance may never go
negative, so it can only deliver what it holds, and a blocked account moves
nothing at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Context, Decimal, Inexact
from enum import StrEnum
from typing import NamedTuple

from otc.instruments import INSTRUMENTS, Instrument
from otc.money import MAX_DIGITS, InvalidDecimal, fmt, parse_decimal


class InvalidTrade(ValueError):
    """A confirmed trade that can never be booked, whatever the balances."""


# The other side of every deposit and withdrawal; "@" keeps it apart from party ids.
EXTERNAL = "@external"


class TradeStatus(StrEnum):
    PENDING = "PENDING"  # an instruction waiting for its value date or its next attempt
    SETTLED = "SETTLED"
    FAILED = "FAILED"


class JournalKind(StrEnum):
    TRADE = "trade"
    DEPOSIT = "deposit"
    WITHDRAWAL = "withdrawal"


class Account(NamedTuple):
    party: str
    asset: str


@dataclass(frozen=True, slots=True)
class Trade:
    trade_id: str
    rfq_id: str
    instrument: Instrument
    buyer: str
    seller: str
    quantity: Decimal
    price: Decimal
    notional: Decimal

    def __post_init__(self) -> None:
        for name in ("trade_id", "rfq_id", "buyer", "seller"):
            if not getattr(self, name):
                raise InvalidTrade(f"{name} is empty")
        if self.buyer == self.seller:
            raise InvalidTrade(f"{self.buyer} cannot trade with itself")
        if EXTERNAL in (self.buyer, self.seller):
            raise InvalidTrade(f"{EXTERNAL} is not a party")
        for name in ("quantity", "price", "notional"):
            value: Decimal = getattr(self, name)
            if not value.is_finite() or value <= 0:
                raise InvalidTrade(f"{name} must be positive: {value}")
        if not _exact_product_is(self.quantity, self.price, self.notional):
            raise InvalidTrade(
                f"notional {fmt(self.notional)} != quantity {fmt(self.quantity)}"
                f" x price {fmt(self.price)}"
            )


def _exact_product_is(quantity: Decimal, price: Decimal, notional: Decimal) -> bool:
    # Wide enough that the product of two MAX_DIGITS coefficients is never rounded; the
    # Inexact trap turns any rounding that still happens into a refusal, not a silent pass.
    exact = Context(prec=2 * MAX_DIGITS, traps=[Inexact])
    try:
        return exact.multiply(quantity, price) == notional
    except ArithmeticError:
        return False


def parse_trade(
    *,
    trade_id: str,
    rfq_id: str,
    instrument: str,
    buyer: str,
    seller: str,
    quantity: str,
    price: str,
    notional: str,
) -> Trade:
    """Builds a trade from its wire form (decimal strings, instrument symbol)."""
    known = INSTRUMENTS.get(instrument)
    if known is None:
        raise InvalidTrade(f"unknown instrument {instrument!r}")
    try:
        return Trade(
            trade_id=trade_id,
            rfq_id=rfq_id,
            instrument=known,
            buyer=buyer,
            seller=seller,
            quantity=parse_decimal(quantity, field="quantity", positive=True),
            price=parse_decimal(price, field="price", positive=True),
            notional=parse_decimal(notional, field="notional", positive=True),
        )
    except InvalidDecimal as exc:
        raise InvalidTrade(str(exc)) from None


@dataclass(frozen=True, slots=True)
class Posting:
    party: str
    asset: str
    amount: Decimal  # signed: positive credits the party, negative debits it

    @property
    def account(self) -> Account:
        return Account(self.party, self.asset)


def dvp_postings(trade: Trade) -> tuple[Posting, ...]:
    base, quote = trade.instrument.base, trade.instrument.quote
    return (
        Posting(trade.buyer, base, trade.quantity),
        Posting(trade.seller, base, -trade.quantity),
        Posting(trade.buyer, quote, -trade.notional),
        Posting(trade.seller, quote, trade.notional),
    )


def funding_postings(party: str, asset: str, amount: Decimal) -> tuple[Posting, ...]:
    """A deposit (positive `amount`) or withdrawal (negative) against the outside world."""
    return (Posting(party, asset, amount), Posting(EXTERNAL, asset, -amount))


def unbalanced_assets(postings: Iterable[Posting]) -> dict[str, Decimal]:
    """The assets whose postings do not sum to zero, with what they sum to."""
    sums: dict[str, Decimal] = {}
    for posting in postings:
        sums[posting.asset] = sums.get(posting.asset, Decimal(0)) + posting.amount
    return {asset: total for asset, total in sorted(sums.items()) if total != 0}


def net_by_account(postings: Iterable[Posting]) -> dict[Account, Decimal]:
    """One net amount per account, in (party, asset) order: the order rows are locked in."""
    nets: dict[Account, Decimal] = {}
    for posting in postings:
        nets[posting.account] = nets.get(posting.account, Decimal(0)) + posting.amount
    return dict(sorted(nets.items()))


@dataclass(frozen=True, slots=True)
class Shortfall:
    party: str
    asset: str
    needed: Decimal
    available: Decimal

    def describe(self) -> str:
        return (
            f"insufficient {self.asset} balance: {self.party} must deliver"
            f" {fmt(self.needed)} but holds {fmt(self.available)}"
        )


@dataclass(frozen=True, slots=True)
class Blocked:
    party: str
    asset: str
    reason: str

    def describe(self) -> str:
        why = f": {self.reason}" if self.reason else ""
        return f"account {self.party} {self.asset} is blocked{why}"


Refusal = Shortfall | Blocked


def first_shortfall(
    balances: Mapping[Account, Decimal], postings: Iterable[Posting]
) -> Shortfall | None:
    """The first account, in (party, asset) order, that the postings would overdraw;
    None when all of them can be applied. A missing balance counts as zero."""
    for account, net in net_by_account(postings).items():
        if account.party == EXTERNAL:
            continue
        available = balances.get(account, Decimal(0))
        if available + net < 0:
            return Shortfall(account.party, account.asset, -net, available)
    return None


def first_blocked(blocked: Mapping[Account, str], postings: Iterable[Posting]) -> Blocked | None:
    """The first blocked account, in (party, asset) order, that the postings touch;
    `blocked` maps each blocked account to why it is."""
    for account in net_by_account(postings):
        if account in blocked:
            return Blocked(account.party, account.asset, blocked[account])
    return None


def refusal(
    balances: Mapping[Account, Decimal],
    blocked: Mapping[Account, str],
    postings: Iterable[Posting],
) -> Refusal | None:
    """Why the postings cannot be applied now, or None: a block first, since no
    funding could lift it, then a shortfall."""
    postings = tuple(postings)
    return first_blocked(blocked, postings) or first_shortfall(balances, postings)
