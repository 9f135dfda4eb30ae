"""gRPC client of risk_limits. Every call carries a deadline. A call that fails
with a transient status is retried by the caller with the *same* reservation id,
which risk_limits treats idempotently, so a timeout never means "assume failure".
A refusal keeps its gRPC status and the reply code the registry gives it.
Every call carries the caller's trace context in its metadata."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import grpc

from otc import tracing
from otc.contracts import risk_limits_pb2 as pb
from otc.contracts import risk_limits_pb2_grpc as pb_grpc
from otc.errors import ERROR_CODE_METADATA, RISK_REFUSALS, risk_refusal_code
from otc.money import fmt


@dataclass(frozen=True, slots=True)
class CreditLeg:
    party: str
    counterparty: str
    amount: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class FrozenReservation:
    reservation_id: str
    rfq_id: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class RiskAnswer:
    """`status` is the reservation's status, or the gRPC status of a refusal, whose
    reply code (otc.errors.risk_refusal_code) is `code`."""

    ok: bool
    status: str
    message: str = ""
    code: str = ""


class RiskClient:
    def __init__(self, target: str, timeout_s: float) -> None:
        self._channel = grpc.aio.insecure_channel(
            target, interceptors=tracing.client_interceptors()
        )
        self._stub = pb_grpc.RiskLimitsStub(self._channel)
        self._timeout = timeout_s

    async def close(self) -> None:
        await self._channel.close()

    async def freeze(
        self, reservation_id: str, rfq_id: str, legs: list[CreditLeg], deadline: datetime
    ) -> RiskAnswer:
        request = pb.FreezeRequest(
            reservation_id=reservation_id,
            rfq_id=rfq_id,
            legs=[
                pb.CreditLeg(
                    party=leg.party,
                    counterparty=leg.counterparty,
                    amount=fmt(leg.amount),
                    currency=leg.currency,
                )
                for leg in legs
            ],
        )
        request.deadline.FromDatetime(deadline)
        try:
            reply = await self._stub.Freeze(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            return _refusal(exc)
        return RiskAnswer(True, reply.status)

    async def commit(self, reservation_id: str) -> RiskAnswer:
        try:
            reply = await self._stub.Commit(
                pb.CommitRequest(reservation_id=reservation_id), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as exc:
            return _refusal(exc)
        return RiskAnswer(True, reply.status)

    async def release(self, reservation_id: str, reason: str) -> RiskAnswer:
        try:
            reply = await self._stub.Release(
                pb.ReleaseRequest(reservation_id=reservation_id, reason=reason),
                timeout=self._timeout,
            )
        except grpc.aio.AioRpcError as exc:
            return _refusal(exc)
        return RiskAnswer(True, reply.status)

    async def status(self, reservation_id: str) -> str | None:
        """The reservation's stored status (FROZEN, COMMITTED, ...), None if unknown."""
        try:
            reply = await self._stub.GetReservation(
                pb.GetReservationRequest(reservation_id=reservation_id), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() is grpc.StatusCode.NOT_FOUND:
                return None
            raise
        status: str = reply.status
        return status

    async def frozen_before(
        self, created_before: datetime, after: str, limit: int
    ) -> list[FrozenReservation]:
        """One page of FROZEN reservations created before `created_before`."""
        request = pb.ListFrozenRequest(after=after, limit=limit)
        request.created_before.FromDatetime(created_before)
        reply = await self._stub.ListFrozen(request, timeout=self._timeout)
        return [
            FrozenReservation(r.reservation_id, r.rfq_id, r.created_at.ToDatetime(tzinfo=UTC))
            for r in reply.reservations
        ]


_BUSINESS_REFUSALS = frozenset(grpc.StatusCode[name] for name in RISK_REFUSALS)


def _refusal(exc: grpc.aio.AioRpcError) -> RiskAnswer:
    """A business "no" becomes an answer; anything else (unavailable, deadline) is
    re-raised so that the consumer retries the whole idempotent step."""
    if exc.code() not in _BUSINESS_REFUSALS:
        raise exc
    status = exc.code().name
    error_code = next(
        (str(value) for key, value in exc.trailing_metadata() or () if key == ERROR_CODE_METADATA),
        "",
    )
    return RiskAnswer(False, status, exc.details() or "", risk_refusal_code(status, error_code))
