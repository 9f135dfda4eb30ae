"""How the edge's read model follows `order.events`: every write is idempotent, so
every edge replica and the catch-up consumer may apply the same event."""

from __future__ import annotations

from typing import Any

from otc.contracts import events_pb2 as ev
from otc.money import parse_decimal
from rfq_service.service_layer.unit_of_work import RfqUnitOfWork


async def apply_state(uow: RfqUnitOfWork, p: ev.OrderStateChanged) -> None:
    async with uow:
        await uow.rfqs.apply_status(
            p.rfq_id,
            at=uow.clock.now(),
            status=p.state,
            version=p.version,
            reason=p.reason,
            accepted_quote_id=p.quote_id or None,
            price=parse_decimal(p.price) if p.price else None,
            trade_id=p.trade_id or None,
        )
        await uow.commit()


async def record_quote(uow: RfqUnitOfWork, p: ev.QuoteRecorded) -> dict[str, Any] | None:
    """The quote's row as stored, or None when the RFQ is not one of the edge's."""
    q = p.quote
    tz = uow.clock.now().tzinfo
    values = {
        "quote_id": q.quote_id,
        "rfq_id": q.rfq_id,
        "maker": q.maker,
        "bid_px": parse_decimal(q.bid_px) if q.bid_px else None,
        "offer_px": parse_decimal(q.offer_px) if q.offer_px else None,
        "quantity": parse_decimal(q.quantity),
        "valid_until": q.valid_until.ToDatetime(tzinfo=tz),
    }
    async with uow:
        # Only RFQs this edge created have a row (it is written before the RFQ
        # is published); anything else is not ours to show.
        if await uow.rfqs.get(q.rfq_id) is None:
            return None
        await uow.rfqs.add_quote(values, uow.clock.now())
        await uow.commit()
    return values


async def withdraw_quote(uow: RfqUnitOfWork, p: ev.QuoteWithdrawalRecorded) -> bool:
    """False when the RFQ is not one of the edge's."""
    w = p.withdrawal
    async with uow:
        if await uow.rfqs.get(w.rfq_id) is None:
            return False
        await uow.rfqs.withdraw_quote(w.rfq_id, w.quote_id, w.reason, uow.clock.now())
        await uow.commit()
    return True
