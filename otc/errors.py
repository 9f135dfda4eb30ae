"""The platform's one error registry: each kind of error with its HTTP status, its
gRPC status and its codes, drawn once here and applied by thin adapters at the
edges (otc/api.py for HTTP, the risk_limits gRPC server and order_core's client).

    kind                      HTTP  gRPC                 codes
    OtcError                  500   INTERNAL             internal
    ├── DomainError           400   INVALID_ARGUMENT     a business rule said no; never retried
    │   ├── NotFound          404   NOT_FOUND            not_found, unknown_party
    │   ├── Conflict          409   FAILED_PRECONDITION  the state said no: quote_taken,
    │   │   │                                            quote_expired, quote_withdrawn,
    │   │   │                                            quote_replaced, unknown_quote,
    │   │   │                                            side_required, wrong_side, no_price,
    │   │   │                                            client_rfq_id_reused,
    │   │   │                                            insufficient_credit, credit_refused,
    │   │   │                                            reservation_expired, no_credit_line,
    │   │   │                                            invalid_credit_request, risk_refused,
    │   │   │                                            reservation_id_reused (ALREADY_EXISTS)
    │   │   └── IllegalTransition                      wrong_state: a state machine refused
    │   │                                                a trigger (an order, a reservation)
    │   ├── Forbidden         403   PERMISSION_DENIED    forbidden
    │   └── ValidationFailed  422   INVALID_ARGUMENT     invalid_request, invalid_quantity,
    │                                                    market_closed, unknown_instrument, ...
    ├── Unauthorized          401   INVALID_ARGUMENT     unauthorized
    ├── RateLimited           429   INVALID_ARGUMENT     rate_limited: says when to retry
    ├── TooManySessions       429   RESOURCE_EXHAUSTED   too_many_sessions
    └── TransientError        503   UNAVAILABLE          unavailable: retried with backoff
        ├── NotYetKnown                                  worth retrying soon
        └── FailpointError                               failpoint (fault injection)

A service refines a kind by subclassing it (risk_limits' CreditRefused is a
Conflict with code `credit_refused`; its ReservationIdReused answers ALREADY_EXISTS).
The answer to a trader's accept or cancel travels over Kafka as a reply code, not
as an exception: `REPLY_CODES` gives each such code its kind, hence its HTTP
status, and `risk_refusal_code` turns a risk_limits refusal into one. gRPC
statuses are named here by their `grpc.StatusCode` names, so that this module
imports no I/O library. `is_transient` also recognises the driver exceptions that
mean "try again later".
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final


class OtcError(Exception):
    code = "error"
    status = 500

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class DomainError(OtcError):
    status = 400
    code = "bad_request"
    grpc_code = "INVALID_ARGUMENT"


class NotFound(DomainError):
    status = 404
    code = "not_found"
    grpc_code = "NOT_FOUND"


class Conflict(DomainError):
    status = 409
    code = "conflict"
    grpc_code = "FAILED_PRECONDITION"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"
    grpc_code = "PERMISSION_DENIED"


class ValidationFailed(DomainError):
    status = 422
    code = "invalid_request"
    grpc_code = "INVALID_ARGUMENT"


class IllegalTransition(Conflict):
    """A state machine refused `event` in `state`; the message names both, and
    `subject` (say "reservation r-1") when the machine belongs to a named thing."""

    code = "wrong_state"

    def __init__(self, state: str, event: str, *, subject: str | None = None) -> None:
        if subject is None:
            message = f"event {event} is not allowed in state {state}"
        else:
            message = f"{subject} is {state}; cannot {event}"
        super().__init__(message)
        self.state = state
        self.event = event


class Unauthorized(OtcError):
    """No valid bearer token: missing, expired, badly signed or naming no known role."""

    status = 401
    code = "unauthorized"


class RateLimited(OtcError):
    """A party over its request rate; `retry_after` is when the same call would go through."""

    status = 429
    code = "rate_limited"

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"too many requests; retry in {retry_after:.2f} s")
        self.retry_after = retry_after


class TooManySessions(OtcError):
    """A party already holds as many WebSocket sessions as it may."""

    status = 429
    code = "too_many_sessions"
    grpc_code = "RESOURCE_EXHAUSTED"


class TransientError(OtcError):
    status = 503
    code = "unavailable"
    retry_after: float | None = None  # seconds; None lets the caller back off as it likes


class NotYetKnown(TransientError):
    """Refers to something that is very likely still on its way (another topic's
    message overtaken by this one): worth retrying soon rather than backing off."""

    retry_after = 0.05


REPLY_CODES: Final[Mapping[str, type[DomainError]]] = MappingProxyType(
    {
        "not_found": NotFound,
        "wrong_state": IllegalTransition,
        "unknown_quote": Conflict,
        "quote_taken": Conflict,
        "quote_expired": Conflict,
        "quote_withdrawn": Conflict,
        "quote_replaced": Conflict,
        "side_required": Conflict,
        "wrong_side": Conflict,
        "no_price": Conflict,
        "reservation_expired": Conflict,
        "insufficient_credit": Conflict,
        "no_credit_line": Conflict,
        "invalid_credit_request": Conflict,
        "reservation_id_reused": Conflict,
        "risk_refused": Conflict,
    }
)
"""Every code order_core answers a trader's command with, and its kind. A refused
command names an RFQ that exists, so all but `not_found` are conflicts, including
the risk refusals: the trader's request was well formed, the credit said no."""

CREDIT_REFUSED = "credit_refused"
"""risk_limits' code for a Freeze refused for want of credit."""

RISK_REFUSALS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "NOT_FOUND": "no_credit_line",
        "INVALID_ARGUMENT": "invalid_credit_request",
        "ALREADY_EXISTS": "reservation_id_reused",
        "FAILED_PRECONDITION": "risk_refused",
    }
)
"""The reply code of an accept risk_limits refused, by the gRPC status of the
refusal; a refusal for want of credit (`CREDIT_REFUSED`) is `insufficient_credit`."""

ERROR_CODE_METADATA = "otc-error-code"
"""The gRPC trailing-metadata key that carries the domain error's code beside its status."""


def http_status(reply_code: str) -> int:
    """The HTTP status a refusal with `reply_code` answers with; a code this
    registry does not know is still a refusal of a known RFQ, a conflict."""
    return REPLY_CODES.get(reply_code, Conflict).status


def grpc_code(exc: OtcError) -> str:
    """The name of the `grpc.StatusCode` that `exc` answers a call with."""
    if isinstance(exc, DomainError):
        return exc.grpc_code
    if exc.status < 500:
        return "INVALID_ARGUMENT"
    return "UNAVAILABLE" if is_transient(exc) else "INTERNAL"


def risk_refusal_code(grpc_status: str, error_code: str) -> str:
    """The reply code of an accept refused by risk_limits with `grpc_status` and
    the domain error code it sent alongside."""
    if error_code == CREDIT_REFUSED:
        return "insufficient_credit"
    return RISK_REFUSALS.get(grpc_status, "risk_refused")


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, TransientError | ConnectionError | TimeoutError | asyncio.TimeoutError):
        return True
    if isinstance(exc, OSError):
        return True
    names = {cls.__name__ for cls in type(exc).__mro__}
    transient_names = {
        "OperationalError",
        "TimeoutError",  # SQLAlchemy's pool checkout timeout is not the builtin one
        "InterfaceError",
        "ConnectionDoesNotExistError",
        "CannotConnectNowError",
        "TooManyConnectionsError",
        "DeadlockDetectedError",
        "SerializationError",
        "KafkaConnectionError",
        "KafkaTimeoutError",
        "RequestTimedOutError",
        "NotLeaderForPartitionError",
    }
    if names & transient_names:
        return True
    code = getattr(exc, "code", None)
    if callable(code):
        try:
            name = getattr(code(), "name", "")
        except Exception:
            return False
        return name in {"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED"}
    return False
