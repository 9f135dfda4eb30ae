"""risk_limits as the end-of-day batch sees it: its gRPC API, nothing else."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc

from otc.contracts import risk_limits_pb2 as pb
from otc.contracts import risk_limits_pb2_grpc as pb_grpc
from otc.money import parse_decimal
from settlement.domain.views import CommittedView, CreditLegView, CreditView, LineView

CALL_TIMEOUT_S = 30.0


class RiskUnavailable(RuntimeError):
    """The credit service could not be reached, or refused."""


class Risk:
    def __init__(self, target: str) -> None:
        self._target = target

    async def expire_frozen(self, before: datetime) -> int:
        request = pb.ExpireFrozenRequest()
        request.before.FromDatetime(before)
        async with grpc.aio.insecure_channel(self._target) as channel:
            try:
                answer = await pb_grpc.RiskLimitsStub(channel).ExpireFrozen(
                    request, timeout=CALL_TIMEOUT_S
                )
            except grpc.aio.AioRpcError as exc:
                raise RiskUnavailable(self._why(exc)) from None
        return int(answer.expired)

    async def credit_in_use(self) -> CreditView:
        async with grpc.aio.insecure_channel(self._target) as channel:
            try:
                answer = await pb_grpc.RiskLimitsStub(channel).ListCommitted(
                    pb.ListCommittedRequest(), timeout=CALL_TIMEOUT_S
                )
            except grpc.aio.AioRpcError as exc:
                raise RiskUnavailable(self._why(exc)) from None
        return CreditView(
            reservations=[
                CommittedView(
                    reservation_id=r.reservation_id,
                    rfq_id=r.rfq_id,
                    legs=tuple(_leg(leg) for leg in r.legs),
                    holds=tuple(_leg(hold) for hold in r.holds),
                    committed_at=r.committed_at.ToDatetime(tzinfo=UTC),
                )
                for r in answer.reservations
            ],
            lines=[
                LineView(line.party, line.counterparty, line.currency, parse_decimal(line.used))
                for line in answer.lines
            ],
        )

    def _why(self, exc: grpc.aio.AioRpcError) -> str:
        return f"credit service at {self._target}: {exc.code().name}: {exc.details()}"


def _leg(leg: pb.CreditLeg) -> CreditLegView:
    return CreditLegView(leg.party, leg.counterparty, parse_decimal(leg.amount), leg.currency)
