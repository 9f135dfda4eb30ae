"""The invariants of what each service keeps in its own books: credit lines against
the reservations that hold them, the settlement ledger against its balances and
trades, and the audit trail's hash chain.

Each of these is written in one transaction of one service, so in one snapshot it
must hold exactly, with no grace: a line's `frozen` is what its FROZEN
reservations hold and its `used` what its COMMITTED ones hold (a settled or failed
trade has given its credit back), a journal's postings sum to zero per asset, a
balance is the sum of its account's postings, and a settled trade has exactly one
journal while a pending or failed one has none.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from decimal import Decimal

from order_core.domain.trail_verifier import Finding
from otc.money import fmt
from risk_limits.domain.credit import LineKey
from risk_limits.domain.currency import EXACT
from risk_limits.domain.reservation import Status
from settlement.domain.ledger import EXTERNAL, TradeStatus

from .snapshot import AccountRow, Break, JournalSum, LineRow, ReservationRow, TradeRow

ZERO = Decimal(0)


def credit_breaks(
    lines: Iterable[LineRow], reservations: Iterable[ReservationRow]
) -> Iterator[Break]:
    held: dict[tuple[str, LineKey], Decimal] = {}
    currencies: dict[LineKey, set[str]] = {}
    for r in reservations:
        if r.status not in (Status.FROZEN, Status.COMMITTED):
            continue
        for hold in r.holds:
            key = (r.status, hold.line)
            held[key] = EXACT.add(held.get(key, ZERO), hold.amount)
            currencies.setdefault(hold.line, set()).add(hold.currency)
    known: set[LineKey] = set()
    for line in lines:
        known.add(line.key)
        frozen = held.get((Status.FROZEN, line.key), ZERO)
        used = held.get((Status.COMMITTED, line.key), ZERO)
        if (line.frozen, line.used) != (frozen, used):
            yield Break(
                "credit_line_mismatch",
                f"credit line {line.key}: frozen {fmt(line.frozen)} but its FROZEN "
                f"reservations hold {fmt(frozen)}; used {fmt(line.used)} but its COMMITTED "
                f"reservations hold {fmt(used)} {line.currency}",
            )
        foreign = currencies.get(line.key, set()) - {line.currency}
        if foreign:
            yield Break(
                "credit_line_mismatch",
                f"credit line {line.key} is in {line.currency} but reservations hold "
                f"{', '.join(sorted(foreign))} on it",
            )
        in_use = EXACT.add(line.used, line.frozen)
        if in_use > line.limit:
            # Also reachable by an admin lowering a limit below the credit in use.
            yield Break(
                "credit_over_limit",
                f"credit line {line.key}: used {fmt(line.used)} + frozen {fmt(line.frozen)} "
                f"= {fmt(in_use)} exceeds its limit {fmt(line.limit)} {line.currency}",
            )
    for (status, line_key), amount in sorted(held.items()):
        if line_key not in known:
            yield Break(
                "credit_line_mismatch",
                f"{status} reservations hold {fmt(amount)} on credit line {line_key}, "
                "which does not exist",
            )


def ledger_breaks(
    journal_sums: Iterable[JournalSum], accounts: Iterable[AccountRow]
) -> Iterator[Break]:
    for j in journal_sums:
        if j.total != 0:
            yield Break(
                "ledger_unbalanced",
                f"journal {j.journal_id} ({j.kind} {j.reference}): its {j.asset} postings "
                f"sum to {fmt(j.total)}, not 0",
            )
    for a in accounts:
        if a.party == EXTERNAL:  # the world outside has no balance to agree with
            continue
        balance = ZERO if a.balance is None else a.balance
        if balance != a.postings:
            kept = "no balance row" if a.balance is None else f"balance {fmt(a.balance)}"
            yield Break(
                "balance_mismatch",
                f"account {a.party} {a.asset} has {kept} but its postings sum to {fmt(a.postings)}",
            )


def trade_journal_breaks(trades: Iterable[TradeRow]) -> Iterator[Break]:
    for t in trades:
        expected = 1 if t.status == TradeStatus.SETTLED else 0
        if t.journals != expected:
            yield Break(
                "trade_journal_mismatch",
                f"trade {t.trade_id} of rfq {t.rfq_id} is {t.status} with {t.journals} "
                f"trade journals, not {expected}",
            )


def audit_breaks(finding: Finding | None) -> Iterator[Break]:
    if finding is not None:
        yield Break("audit_chain_broken", f"the audit trail does not hold: {finding.reason}")
