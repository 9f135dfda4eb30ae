"""The platform's error taxonomy, drawn once here and mapped to HTTP/gRPC at the edges.

    OtcError
    ├── DomainError            a business rule said no (4xx; never retried)
    │   ├── NotFound           404
    │   ├── Conflict           409 (wrong state, already taken, expired, idempotency clash)
    │   ├── Forbidden          403
    │   └── ValidationFailed   422
    └── TransientError         infrastructure hiccup: retried with backoff

`is_transient` also recognises the driver exceptions that mean "try again later".
"""

from __future__ import annotations

import asyncio


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


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Conflict(DomainError):
    status = 409
    code = "conflict"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"


class ValidationFailed(DomainError):
    status = 422
    code = "invalid_request"


class TransientError(OtcError):
    status = 503
    code = "unavailable"
    retry_after: float | None = None  # seconds; None lets the caller back off as it likes


class NotYetKnown(TransientError):
    """Refers to something that is very likely still on its way (another topic's
    message overtaken by this one): worth retrying soon rather than backing off."""

    retry_after = 0.05


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
