"""The edge's consumers of `order.events`: they answer waiting commands, keep the
read model current and push quotes and state changes to the owner's WebSockets.

Each edge replica reads every partition itself from the end (manual assignment,
no consumer group), because any replica may hold the trader's connection or
waiting request; it writes the read model before it pushes, so a client that
reads after a push sees at least what was pushed. What was published while no
replica ran is caught up by a second consumer in a group with committed offsets
(`catch_up`), which only writes the read model; every write is idempotent.
The writes themselves are `rfq_service.service_layer.read_model`'s.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from otc.bus.envelope import Message
from otc.bus.requests import Replies
from otc.clock import Clock
from otc.contracts import events_pb2 as ev
from rfq_service.entrypoints.hub import Hub
from rfq_service.service_layer import read_model
from rfq_service.service_layer.unit_of_work import RfqUnitOfWork
from rfq_service.service_layer.views import quote_view


class OrderFeed:
    def __init__(
        self, engine: AsyncEngine, hub: Hub | None, replies: Replies | None, clock: Clock
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

    def _uow(self) -> RfqUnitOfWork:
        return RfqUnitOfWork(self._engine, clock=self._clock)

    async def _state_changed(self, p: ev.OrderStateChanged) -> None:
        await read_model.apply_state(self._uow(), p)
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
        values = await read_model.record_quote(self._uow(), p)
        if values is None:
            return
        self._push(p.requester, {"type": "quote", "data": quote_view(values)})

    async def _quote_withdrawn(self, p: ev.QuoteWithdrawalRecorded) -> None:
        w = p.withdrawal
        # Every edge replica applies every event and pushes to its own
        # connections, so the push does not depend on who updated the row.
        if not await read_model.withdraw_quote(self._uow(), p):
            return
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
