"""The edge's consumers of `order.events`: they answer waiting commands, keep the
read model current and push quotes and state changes to the owner's WebSockets.

Each edge replica reads every partition itself from the end (manual assignment,
no consumer group), because any replica may hold the trader's connection or
waiting request; it writes the read model before it pushes, so a client that
reads after a push sees at least what was pushed. What was published while no
replica ran is caught up by a second consumer in a group with committed offsets
(`catch_up`), which only writes the read model; every write is idempotent.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from otc.bus.envelope import Message
from otc.clock import Clock
from otc.contracts import events_pb2 as ev
from otc.money import parse_decimal
from rfq_service.adapters.repository import RfqRepository
from rfq_service.entrypoints.hub import Hub
from rfq_service.service_layer.replies import ReplyRegistry
from rfq_service.service_layer.views import quote_view


class OrderFeed:
    def __init__(
        self, engine: AsyncEngine, hub: Hub | None, replies: ReplyRegistry | None, clock: Clock
    ) -> None:
        """Without a hub and replies it only keeps the read model (the catch-up)."""
        self._engine = engine
        self._hub = hub
        self._replies = replies
        self._clock = clock

    def _push(self, party: str, message: dict[str, Any]) -> None:
        if self._hub is not None:
            self._hub.push(party, message)

    async def handle(self, topic: str, message: Message) -> None:
        payload = message.payload
        if isinstance(payload, ev.CommandResult):
            if self._replies is not None:
                self._replies.resolve(payload)
        elif isinstance(payload, ev.OrderStateChanged):
            await self._state_changed(payload)
        elif isinstance(payload, ev.QuoteRecorded):
            await self._quote_recorded(payload)
        elif isinstance(payload, ev.QuoteWithdrawalRecorded):
            await self._quote_withdrawn(payload)

    async def _state_changed(self, p: ev.OrderStateChanged) -> None:
        async with self._engine.begin() as conn:
            await RfqRepository(conn).apply_status(
                p.rfq_id,
                at=self._clock.now(),
                status=p.state,
                version=p.version,
                reason=p.reason,
                accepted_quote_id=p.quote_id or None,
                price=parse_decimal(p.price) if p.price else None,
                trade_id=p.trade_id or None,
            )
        self._push(
            p.requester,
            {
                "type": "order",
                "data": {
                    "rfq_id": p.rfq_id,
                    "order_id": p.rfq_id,
                    "status": p.state,
                    "version": p.version,
                    "event": p.event,
                    "reason": p.reason,
                    "quote_id": p.quote_id or None,
                    "price": p.price or None,
                    "trade_id": p.trade_id or None,
                },
            },
        )

    async def _quote_recorded(self, p: ev.QuoteRecorded) -> None:
        q = p.quote
        tz = self._clock.now().tzinfo
        values = {
            "quote_id": q.quote_id,
            "rfq_id": q.rfq_id,
            "maker": q.maker,
            "bid_px": parse_decimal(q.bid_px) if q.bid_px else None,
            "offer_px": parse_decimal(q.offer_px) if q.offer_px else None,
            "quantity": parse_decimal(q.quantity),
            "valid_until": q.valid_until.ToDatetime(tzinfo=tz),
        }
        async with self._engine.begin() as conn:
            repo = RfqRepository(conn)
            # Only RFQs this edge created have a row (it is written before the RFQ
            # is published); anything else is not ours to show.
            if await repo.get(q.rfq_id) is None:
                return
            await repo.add_quote(values, self._clock.now())
        self._push(p.requester, {"type": "quote", "data": quote_view(values)})

    async def _quote_withdrawn(self, p: ev.QuoteWithdrawalRecorded) -> None:
        w = p.withdrawal
        async with self._engine.begin() as conn:
            repo = RfqRepository(conn)
            if await repo.get(w.rfq_id) is None:
                return
            # Every edge replica applies every event and pushes to its own
            # connections, so the push does not depend on who updated the row.
            await repo.withdraw_quote(w.rfq_id, w.quote_id, w.reason, self._clock.now())
        self._push(
            p.requester,
            {
                "type": "quote_withdrawn",
                "data": {
                    "rfq_id": w.rfq_id,
                    "quote_id": w.quote_id,
                    "maker": w.maker,
                    "reason": w.reason,
                },
            },
        )
