"""The credit checks of the reconciliation: risk_limits' used exposure must be the
notional of the trades still waiting to settle, trade by trade and line by line."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from decimal import Decimal

from otc.money import fmt
from settlement.domain.eod_report import Break, Check, ExposureFigure
from settlement.domain.ledger import TradeStatus
from settlement.domain.views import BookedTrade, Books, CreditView


def unsettled(booked: Mapping[str, BookedTrade]) -> dict[str, BookedTrade]:
    """The trades waiting to settle that settlement knows, by RFQ."""
    return {b.trade.rfq_id: b for b in booked.values() if b.status is TradeStatus.PENDING}


def credit_breaks(
    books: Books, booked: Mapping[str, BookedTrade], recent: Callable[[datetime], bool]
) -> Iterable[Break]:
    """`recent` tells a moment young enough for its news to be still on its way."""
    waiting = unsettled(booked)
    committed = {r.rfq_id: r for r in books.credit.reservations}
    for rfq_id, b in sorted(waiting.items()):
        subject = f"trade {b.trade.trade_id}"
        held = committed.get(rfq_id)
        if held is None:
            yield Break(
                Check.CREDIT_HELD,
                subject,
                f"waits to settle but no credit is committed for rfq {rfq_id}",
            )
            continue
        currency = b.trade.instrument.quote
        for leg in held.legs:
            if leg.party not in (b.trade.buyer, b.trade.seller):
                cause = f"credit is committed for {leg.party}, who is not a party to it"
            elif (leg.amount, leg.currency) != (b.trade.notional, currency):
                cause = (
                    f"{leg.party} holds {fmt(leg.amount)} {leg.currency} for it but its "
                    f"notional is {fmt(b.trade.notional)} {currency}"
                )
            else:
                continue
            yield Break(Check.CREDIT_HELD, subject, cause, party=leg.party)
    finished = {b.trade.rfq_id: b for b in booked.values() if b.status is not TradeStatus.PENDING}
    waiting_elsewhere = {o.rfq_id for o in books.order.trades.values() if o.state == "CONFIRMED"}
    for r in books.credit.reservations:
        if r.rfq_id in waiting:
            continue
        subject = f"reservation {r.reservation_id}"
        done = finished.get(r.rfq_id)
        if done is not None:
            yield Break(
                Check.CREDIT_FREED,
                subject,
                f"still uses credit though trade {done.trade.trade_id} is {done.status}",
                in_flight=done.settled_at is not None and recent(done.settled_at),
            )
        elif r.rfq_id not in waiting_elsewhere:
            yield Break(
                Check.CREDIT_FREED,
                subject,
                f"uses credit for rfq {r.rfq_id}, which has no trade waiting to settle",
                # committed a moment ago: order_core's confirmation may be on its way
                in_flight=recent(r.committed_at),
            )
    yield from _line_breaks(books.credit)


def _line_breaks(credit: CreditView) -> Iterable[Break]:
    held: dict[tuple[str, str, str], Decimal] = {}
    for r in credit.reservations:
        for h in r.holds:
            key = (h.party, h.counterparty, h.currency)
            held[key] = held.get(key, Decimal(0)) + h.amount
    used = {(line.party, line.counterparty, line.currency): line.used for line in credit.lines}
    for key in sorted(set(held) | set(used)):
        party, counterparty, currency = key
        if held.get(key, Decimal(0)) == used.get(key, Decimal(0)):
            continue
        line = f"line {party} with {counterparty}" if counterparty else f"gross line {party}"
        yield Break(
            Check.LINE_USED,
            line,
            f"uses {fmt(used.get(key, Decimal(0)))} {currency} but its committed reservations "
            f"hold {fmt(held.get(key, Decimal(0)))}",
            party=party,
            asset=currency,
        )


def exposure(books: Books, booked: Mapping[str, BookedTrade]) -> list[ExposureFigure]:
    """Per party and currency: the notional of its trades waiting to settle, beside
    the credit committed for them."""
    notional: dict[tuple[str, str], Decimal] = {}
    for b in unsettled(booked).values():
        for party in (b.trade.buyer, b.trade.seller):
            key = (party, b.trade.instrument.quote)
            notional[key] = notional.get(key, Decimal(0)) + b.trade.notional
    committed: dict[tuple[str, str], Decimal] = {}
    for r in books.credit.reservations:
        for leg in r.legs:
            key = (leg.party, leg.currency)
            committed[key] = committed.get(key, Decimal(0)) + leg.amount
    figures = []
    for key in sorted(set(notional) | set(committed)):
        party, currency = key
        held, owed = committed.get(key, Decimal(0)), notional.get(key, Decimal(0))
        figures.append(ExposureFigure(party, currency, owed, held))
    return figures
