"""The gRPC edge of `risk_limits.v1.RiskLimits`: each method builds a command, hands
it to its handler and turns the answer into a reply. Errors become status codes
here and only here, following the registry of otc.errors.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, datetime
from decimal import Decimal
from typing import NoReturn, TypeVar

import grpc

from otc.contracts import risk_limits_pb2 as pb
from otc.contracts import risk_limits_pb2_grpc as pb_grpc
from otc.errors import ERROR_CODE_METADATA, OtcError, grpc_code, is_transient
from otc.logging import get_logger
from otc.money import fmt
from risk_limits.domain import commands
from risk_limits.domain.credit import CreditLine
from risk_limits.domain.reservation import Reservation
from risk_limits.service_layer import (
    credit_lines,
    end_of_day,
    freezing,
    lookups,
    settling,
    trade_outcomes,
)
from risk_limits.service_layer.unit_of_work import Dependencies

log = get_logger(__name__)

T = TypeVar("T")

SERVICE_NAME: str = pb.DESCRIPTOR.services_by_name["RiskLimits"].full_name


def status_code(exc: OtcError) -> grpc.StatusCode:
    return grpc.StatusCode[grpc_code(exc)]


class RiskLimitsServicer(pb_grpc.RiskLimitsServicer):
    def __init__(self, deps: Dependencies) -> None:
        self._deps = deps

    async def Freeze(
        self, request: pb.FreezeRequest, context: grpc.aio.ServicerContext
    ) -> pb.FreezeResponse:
        cmd = commands.Freeze(
            reservation_id=request.reservation_id,
            rfq_id=request.rfq_id,
            legs=tuple(
                commands.LegRequest(leg.party, leg.counterparty, leg.amount, leg.currency)
                for leg in request.legs
            ),
            deadline=(
                request.deadline.ToDatetime(tzinfo=UTC) if request.HasField("deadline") else None
            ),
        )
        status = await _answer(context, freezing.freeze(cmd, self._deps))
        return pb.FreezeResponse(reservation_id=request.reservation_id, status=status.value)

    async def Commit(
        self, request: pb.CommitRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReservationResponse:
        cmd = commands.Commit(request.reservation_id)
        status = await _answer(context, settling.commit(cmd, self._deps))
        return pb.ReservationResponse(reservation_id=request.reservation_id, status=status.value)

    async def Release(
        self, request: pb.ReleaseRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReservationResponse:
        cmd = commands.Release(request.reservation_id, request.reason)
        status = await _answer(context, settling.release(cmd, self._deps))
        return pb.ReservationResponse(reservation_id=request.reservation_id, status=status.value)

    async def GetExposure(
        self, request: pb.GetExposureRequest, context: grpc.aio.ServicerContext
    ) -> pb.Exposure:
        query = commands.GetExposure(request.party, request.counterparty)
        return _exposure(await _answer(context, credit_lines.get_exposure(query, self._deps)))

    async def SetCreditLine(
        self, request: pb.SetCreditLineRequest, context: grpc.aio.ServicerContext
    ) -> pb.Exposure:
        cmd = commands.SetCreditLine(
            request.party, request.currency, request.limit, request.counterparty
        )
        return _exposure(await _answer(context, credit_lines.set_credit_line(cmd, self._deps)))

    async def SetReferenceRate(
        self, request: pb.SetReferenceRateRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReferenceRate:
        cmd = commands.SetReferenceRate(request.currency, request.rate_in_usd)
        rate = await _answer(context, credit_lines.set_reference_rate(cmd, self._deps))
        return pb.ReferenceRate(currency=rate.currency, rate_in_usd=fmt(rate.rate_in_usd))

    async def SettleReservation(
        self, request: pb.SettleReservationRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReservationResponse:
        cmd = commands.SettleReservation(request.reservation_id, request.failed, request.reason)
        status = await _answer(context, trade_outcomes.settle_reservation(cmd, self._deps))
        return pb.ReservationResponse(reservation_id=request.reservation_id, status=status.value)

    async def ExpireFrozen(
        self, request: pb.ExpireFrozenRequest, context: grpc.aio.ServicerContext
    ) -> pb.ExpireFrozenResponse:
        before = (
            request.before.ToDatetime(tzinfo=UTC)
            if request.HasField("before")
            else self._deps.clock.now()
        )
        expired = await _answer(context, end_of_day.expire_frozen(before, self._deps))
        return pb.ExpireFrozenResponse(expired=expired)

    async def ListCommitted(
        self, request: pb.ListCommittedRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListCommittedResponse:
        snapshot = await _answer(context, end_of_day.committed(self._deps))
        return pb.ListCommittedResponse(
            reservations=[_committed(r, committed_at) for r, committed_at in snapshot.reservations],
            lines=[_exposure(line) for line in snapshot.lines],
        )

    async def GetReservation(
        self, request: pb.GetReservationRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReservationResponse:
        query = commands.GetReservation(request.reservation_id)
        stored = await _answer(context, lookups.get_reservation(query, self._deps))
        answer = pb.ReservationResponse(
            reservation_id=stored.reservation_id, status=stored.status.value, rfq_id=stored.rfq_id
        )
        answer.deadline.FromDatetime(stored.deadline)
        return answer

    async def ListFrozen(
        self, request: pb.ListFrozenRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListFrozenResponse:
        before = (
            request.created_before.ToDatetime(tzinfo=UTC)
            if request.HasField("created_before")
            else self._deps.clock.now()
        )
        query = commands.ListFrozen(before, request.after, request.limit)
        page = await _answer(context, lookups.list_frozen(query, self._deps))
        answer = pb.ListFrozenResponse()
        for item in page:
            frozen = answer.reservations.add(
                reservation_id=item.reservation.reservation_id, rfq_id=item.reservation.rfq_id
            )
            frozen.created_at.FromDatetime(item.created_at)
            frozen.deadline.FromDatetime(item.reservation.deadline)
        return answer


def _committed(r: Reservation, committed_at: datetime) -> pb.CommittedReservation:
    answer = pb.CommittedReservation(
        reservation_id=r.reservation_id,
        rfq_id=r.rfq_id,
        legs=[_leg(leg.party, leg.counterparty, leg.amount, leg.currency) for leg in r.legs],
        holds=[_leg(h.line.party, h.line.counterparty, h.amount, h.currency) for h in r.holds],
    )
    answer.committed_at.FromDatetime(committed_at)
    return answer


def _leg(party: str, counterparty: str, amount: Decimal, currency: str) -> pb.CreditLeg:
    return pb.CreditLeg(
        party=party, counterparty=counterparty, amount=fmt(amount), currency=currency
    )


async def _answer(context: grpc.aio.ServicerContext, work: Awaitable[T]) -> T:
    try:
        return await work
    except OtcError as exc:
        await _abort(context, status_code(exc), exc.message, exc.code)
    except Exception as exc:
        if is_transient(exc):
            log.warning("transient failure", error=repr(exc))
            await _abort(context, grpc.StatusCode.UNAVAILABLE, "temporarily unavailable; retry")
        log.exception("unexpected failure")
        await _abort(context, grpc.StatusCode.INTERNAL, "internal error")


async def _abort(
    context: grpc.aio.ServicerContext,
    code: grpc.StatusCode,
    message: str,
    error_code: str | None = None,
) -> NoReturn:
    """Aborts the call; the domain error's code rides along in the trailing
    metadata, so a client can tell refusals that share a status apart."""
    metadata = ((ERROR_CODE_METADATA, error_code),) if error_code else ()
    await context.abort(code, message, metadata)
    raise AssertionError("ServicerContext.abort returned instead of raising")


def _exposure(line: CreditLine) -> pb.Exposure:
    return pb.Exposure(
        party=line.key.party,
        counterparty=line.key.counterparty,
        currency=line.currency,
        limit=fmt(line.limit),
        used=fmt(line.used),
        frozen=fmt(line.frozen),
        available=fmt(line.available),
    )
