"""What every HTTP API of the platform shares: one error shape,
`{"error": {"code", "message"}}`, the handlers that turn the error taxonomy of
otc/errors.py into it, bearer-token authentication and per-party rate limits.

Rate-limit buckets live in each process, so with N replicas a party may reach N
times the limit at most; the limit guards each replica, not a global quota."""

# No `from __future__ import annotations`: FastAPI reads the dependency's
# annotations at runtime.

import math
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from otc.auth import Principal, Unauthorized
from otc.errors import OtcError, is_transient
from otc.logging import get_logger
from otc.rate_limit import TokenBuckets

log = get_logger(__name__)


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status)


def validation_message(exc: RequestValidationError | ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query"))
        parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
    return "; ".join(parts) or "invalid request"


def retry_after_headers(exc: Exception) -> dict[str, str]:
    """Retry-After for an error that knows when to retry, in whole seconds rounded
    up, never zero."""
    retry_after: float | None = getattr(exc, "retry_after", None)
    if retry_after is None:
        return {}
    return {"Retry-After": str(max(1, math.ceil(retry_after)))}


def install_error_handlers(app: FastAPI) -> None:
    """Every failure answers in the one error shape: the taxonomy's own status,
    422 for invalid input, 503 for a dependency that is down, 500 for a bug."""

    @app.exception_handler(OtcError)
    async def _otc_error(_: Request, exc: OtcError) -> JSONResponse:
        response = error_response(exc.status, exc.code, exc.message)
        response.headers.update(retry_after_headers(exc))
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, "invalid_request", validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        if is_transient(exc):
            log.warning("request failed on a dependency", error=f"{type(exc).__name__}: {exc}")
            response = error_response(503, "unavailable", "a dependency is unavailable; retry")
            response.headers["Retry-After"] = "1"
            return response
        log.exception("unhandled error", error=str(exc))
        return error_response(500, "internal", "internal error")


def bearer_principal(
    verify: Callable[[str], Principal],
) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller of `Authorization: Bearer <JWT>`, or 401."""
    bearer = HTTPBearer(auto_error=False)

    async def principal(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Principal:
        if credentials is None:
            raise Unauthorized("missing bearer token")
        return verify(credentials.credentials)

    return principal


def per_party(
    buckets: TokenBuckets, authenticate: Callable[..., Awaitable[Principal]]
) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that authenticates with `authenticate`, then charges the party:
    over its limit is a 429 `rate_limited` whose Retry-After says when to come back."""

    async def limited(caller: Annotated[Principal, Depends(authenticate)]) -> Principal:
        buckets.charge(caller.party)
        return caller

    return limited
