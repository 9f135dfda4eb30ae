"""The error registry: each kind answers with one HTTP status and one gRPC status,
every reply code a trader can get has its status, and a risk refusal keeps its
meaning."""

from __future__ import annotations

import pytest

from order_core.domain import lifecycle
from otc.errors import (
    REPLY_CODES,
    Conflict,
    DomainError,
    Forbidden,
    IllegalTransition,
    NotFound,
    OtcError,
    TransientError,
    ValidationFailed,
    grpc_code,
    http_status,
    risk_refusal_code,
)
from risk_limits.domain import errors
from risk_limits.domain.errors import CreditRefused, ReservationIdReused, UnknownParty


@pytest.mark.parametrize(
    ("error", "grpc"),
    [
        (DomainError("no"), "INVALID_ARGUMENT"),
        (NotFound("no"), "NOT_FOUND"),
        (UnknownParty("no"), "NOT_FOUND"),
        (Conflict("no"), "FAILED_PRECONDITION"),
        (CreditRefused("no"), "FAILED_PRECONDITION"),
        (IllegalTransition("RELEASED", "commit", subject="reservation r"), "FAILED_PRECONDITION"),
        (ReservationIdReused("no"), "ALREADY_EXISTS"),
        (Forbidden("no"), "PERMISSION_DENIED"),
        (ValidationFailed("no"), "INVALID_ARGUMENT"),
        (TransientError("no"), "UNAVAILABLE"),
        (OtcError("no"), "INTERNAL"),
    ],
    ids=lambda x: type(x).__name__ if isinstance(x, OtcError) else x,
)
def test_each_kind_answers_one_grpc_status(error: OtcError, grpc: str) -> None:
    assert grpc_code(error) == grpc


def test_an_error_outside_the_domain_below_500_is_an_invalid_argument() -> None:
    class Refused(OtcError):
        status = 429

    assert grpc_code(Refused("slow down")) == "INVALID_ARGUMENT"


@pytest.mark.parametrize("code", sorted(REPLY_CODES))
def test_every_reply_code_but_not_found_is_a_conflict(code: str) -> None:
    assert http_status(code) == (404 if code == "not_found" else 409)


@pytest.mark.parametrize("code", ["", "refused", "some_future_code"])
def test_a_reply_code_the_registry_does_not_know_is_a_conflict(code: str) -> None:
    assert http_status(code) == 409


@pytest.mark.parametrize(
    ("status", "error_code", "reply"),
    [
        ("FAILED_PRECONDITION", "credit_refused", "insufficient_credit"),
        ("FAILED_PRECONDITION", "missing_reference_rate", "risk_refused"),
        ("FAILED_PRECONDITION", "", "risk_refused"),
        ("NOT_FOUND", "unknown_party", "no_credit_line"),
        ("INVALID_ARGUMENT", "invalid_request", "invalid_credit_request"),
        ("ALREADY_EXISTS", "reservation_id_reused", "reservation_id_reused"),
    ],
)
def test_a_risk_refusal_keeps_its_meaning(status: str, error_code: str, reply: str) -> None:
    assert risk_refusal_code(status, error_code) == reply
    assert reply in REPLY_CODES


def test_both_state_machines_refuse_with_the_one_illegal_transition() -> None:
    assert lifecycle.IllegalTransition is errors.IllegalTransition is IllegalTransition
    order = IllegalTransition("SETTLED", "Cancel")
    assert (order.code, order.message) == (
        "wrong_state",
        "event Cancel is not allowed in state SETTLED",
    )
