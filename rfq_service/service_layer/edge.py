"""The edge's use cases: create, read, accept and cancel RFQs for an authenticated
party. The acting party always comes from the token, never from the request body."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from otc.auth import Principal, Role
from otc.bus import topics
from otc.bus.requests import Replies
from otc.clock import Clock
from otc.contracts import events_pb2 as ev
from otc.errors import Conflict, Forbidden, NotFound
from otc.ids import new_id
from otc.money import fmt
from otc.sides import Side, to_proto
from rfq_service.domain.rfq import RfqSpec
from rfq_service.service_layer.unit_of_work import RfqUnitOfWork
from rfq_service.service_layer.views import rfq_view


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    """`accepted` None means no answer in time: the outcome will arrive on the WebSocket."""

    accepted: bool | None
    rfq_id: str
    command_id: str
    state: str = ""
    code: str = ""
    reason: str = ""


def for_makers(requested: ev.RfqRequested) -> ev.RfqRequested:
    """The copy makers receive: an anonymous RFQ does not name its requester."""
    broadcast = ev.RfqRequested()
    broadcast.CopyFrom(requested)
    if requested.anonymous:
        broadcast.requester = ""
    return broadcast


def _require_trader(principal: Principal) -> None:
    if principal.role is not Role.TRADER:
        raise Forbidden(f"role {principal.role.value} cannot do this; traders only")


class Edge:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        replies: Replies,
        clock: Clock,
        reply_timeout_s: float,
    ) -> None:
        self._engine = engine
        self._replies = replies
        self._clock = clock
        self._reply_timeout = reply_timeout_s

    def now(self) -> datetime:
        return self._clock.now()

    def _uow(self) -> RfqUnitOfWork:
        """Reads run in one too, and never commit."""
        return RfqUnitOfWork(self._engine, clock=self._clock)

    async def create_rfq(self, principal: Principal, spec: RfqSpec) -> tuple[dict[str, Any], bool]:
        """Returns (rfq, created); a repeat of the same request returns the first RFQ."""
        _require_trader(principal)
        rfq_id = new_id()
        now = self._clock.now()
        async with self._uow() as uow:
            repo = uow.rfqs
            created = await repo.insert(rfq_id, principal.party, spec, now)
            if created:
                requested = ev.RfqRequested(
                    rfq_id=rfq_id,
                    client_rfq_id=spec.client_rfq_id,
                    requester=principal.party,
                    instrument=spec.instrument,
                    side=to_proto(spec.side),
                    quantity=fmt(spec.quantity),
                    counterparties=list(spec.counterparties),
                    anonymous=spec.anonymous,
                )
                requested.created_at.FromDatetime(now)
                requested.expires_at.FromDatetime(spec.expires_at(now))
                uow.emit(topics.ORDER_COMMANDS, rfq_id, requested, correlation_id=rfq_id)
                uow.emit(topics.RFQ_REQUESTS, rfq_id, for_makers(requested), correlation_id=rfq_id)
                row = await repo.get(rfq_id)
            else:
                row = await repo.by_client_id(principal.party, spec.client_rfq_id)
                assert row is not None
                if row["request_hash"] != spec.request_hash():
                    raise Conflict(
                        f"client_rfq_id {spec.client_rfq_id!r} was already used for a "
                        "different request",
                        code="client_rfq_id_reused",
                    )
            await uow.commit()
        assert row is not None
        return rfq_view(row, []), created

    async def get_rfq(self, principal: Principal, rfq_id: str) -> dict[str, Any]:
        async with self._uow() as uow:
            row = await uow.queries.get(rfq_id)
            if row is None or not self._may_read(principal, row["requester"]):
                raise NotFound(f"no RFQ {rfq_id}")
            return rfq_view(row, await uow.queries.quotes_of(rfq_id))

    async def snapshot(
        self, principal: Principal, *, since: datetime | None
    ) -> list[dict[str, Any]]:
        """The caller's RFQs still in play or changed since `since`, with their quotes:
        what a reconnecting client that cannot resume exactly starts again from."""
        async with self._uow() as uow:
            rows = await uow.queries.changed_for(principal.party, since)
            return [rfq_view(row, await uow.queries.quotes_of(row["rfq_id"])) for row in rows]

    async def list_rfqs(
        self, principal: Principal, *, status: str | None, cursor: str | None, limit: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        _require_trader(principal)
        async with self._uow() as uow:
            rows = await uow.queries.list_for(
                principal.party, status=status, cursor=cursor, limit=limit + 1
            )
        page, more = rows[:limit], len(rows) > limit
        return [rfq_view(r) for r in page], (page[-1]["rfq_id"] if more else None)

    async def accept(
        self, principal: Principal, rfq_id: str, quote_id: str, side: Side | None
    ) -> CommandOutcome:
        _require_trader(principal)
        command = ev.AcceptQuote(
            rfq_id=rfq_id,
            quote_id=quote_id,
            trader=principal.party,
            side=to_proto(side) if side else ev.SIDE_UNSPECIFIED,
        )
        return await self._command(principal, rfq_id, command)

    async def cancel(self, principal: Principal, rfq_id: str) -> CommandOutcome:
        _require_trader(principal)
        command = ev.CancelRfq(rfq_id=rfq_id, trader=principal.party)
        return await self._command(principal, rfq_id, command)

    async def _command(
        self, principal: Principal, rfq_id: str, command: ev.AcceptQuote | ev.CancelRfq
    ) -> CommandOutcome:
        """Commands go through the outbox like the RFQ itself, so on `order.commands`
        an RFQ's commands always come after its creation, and a command the edge
        answered 202 is never lost by a crash of the edge."""
        async with self._uow() as uow:
            row = await uow.rfqs.get(rfq_id)
            if row is None or row["requester"] != principal.party:
                raise NotFound(f"no RFQ {rfq_id}")
            command_id = uow.emit(topics.ORDER_COMMANDS, rfq_id, command, correlation_id=rfq_id)
            with self._replies.expecting(command_id) as future:
                await uow.commit()
        result = await self._replies.wait(command_id, future, self._reply_timeout)
        if result is None:
            return CommandOutcome(None, rfq_id, command_id)
        return CommandOutcome(
            result.accepted,
            rfq_id,
            command_id,
            state=result.state,
            code=result.reason_code,
            reason=result.reason,
        )

    @staticmethod
    def _may_read(principal: Principal, requester: str) -> bool:
        return principal.role is Role.AUDITOR or principal.party == requester
