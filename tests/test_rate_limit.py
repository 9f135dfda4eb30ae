"""Per-party token buckets on a fake monotonic clock, then the edge's 429."""

# no postponed annotations: FastAPI must resolve the route's local dependency types

from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse

from otc.api import per_party, retry_after_headers
from otc.auth import Principal, Role, Unauthorized
from otc.errors import NotYetKnown, OtcError, RateLimited, TransientError
from otc.rate_limit import TokenBuckets

RATE, BURST = 20.0, 40


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeMonotonic:
    return FakeMonotonic()


@pytest.fixture
def buckets(clock: FakeMonotonic) -> TokenBuckets:
    return TokenBuckets(rate_per_s=RATE, burst=BURST, monotonic=clock)


def _allowed(buckets: TokenBuckets, key: str, times: int) -> int:
    return sum(buckets.try_take(key) is None for _ in range(times))


def test_a_burst_is_allowed_then_refused_with_the_wait_for_one_token(
    buckets: TokenBuckets,
) -> None:
    assert _allowed(buckets, "TRADER-A", BURST) == BURST
    assert buckets.try_take("TRADER-A") == pytest.approx(1 / RATE)


def test_the_wait_counts_what_has_already_refilled(
    buckets: TokenBuckets, clock: FakeMonotonic
) -> None:
    _allowed(buckets, "TRADER-A", BURST)
    clock.now += 0.02  # 0.4 of a token back
    assert buckets.try_take("TRADER-A") == pytest.approx(0.6 / RATE)
    assert buckets.try_take("TRADER-A", cost=5) == pytest.approx(4.6 / RATE)


def test_tokens_refill_at_the_rate_and_never_beyond_the_burst(
    buckets: TokenBuckets, clock: FakeMonotonic
) -> None:
    _allowed(buckets, "TRADER-A", BURST)
    clock.now += 0.5
    assert _allowed(buckets, "TRADER-A", BURST) == 10
    clock.now += 3600
    assert _allowed(buckets, "TRADER-A", BURST + 5) == BURST


def test_a_refused_call_takes_nothing(buckets: TokenBuckets, clock: FakeMonotonic) -> None:
    _allowed(buckets, "TRADER-A", BURST)
    assert _allowed(buckets, "TRADER-A", 100) == 0
    clock.now += 1 / RATE
    assert buckets.try_take("TRADER-A") is None


def test_each_party_has_its_own_bucket(buckets: TokenBuckets) -> None:
    assert _allowed(buckets, "TRADER-A", BURST + 10) == BURST
    assert _allowed(buckets, "TRADER-B", BURST + 10) == BURST


def test_a_party_that_stopped_calling_is_forgotten(
    buckets: TokenBuckets, clock: FakeMonotonic
) -> None:
    for n in range(1000):
        buckets.try_take(f"P-{n}")
    assert len(buckets) == 1000
    clock.now += BURST / RATE
    buckets.try_take("TRADER-A")
    assert len(buckets) == 1


def test_a_bucket_still_refilling_is_kept(buckets: TokenBuckets, clock: FakeMonotonic) -> None:
    _allowed(buckets, "TRADER-A", BURST)
    clock.now += BURST / RATE - 0.1  # 38 tokens back: not full yet
    buckets.try_take("TRADER-B")
    assert len(buckets) == 2
    assert _allowed(buckets, "TRADER-A", BURST) == 38


def test_memory_stays_bounded_under_a_stream_of_new_parties(
    buckets: TokenBuckets, clock: FakeMonotonic
) -> None:
    most = 0
    for n in range(5000):
        clock.now += 0.1
        buckets.try_take(f"P-{n}")
        most = max(most, len(buckets))
    assert most <= BURST / RATE / 0.1 + 1


@pytest.mark.parametrize("cost", [0, -1, BURST + 1])
def test_a_cost_no_bucket_could_ever_pay_is_an_error(buckets: TokenBuckets, cost: float) -> None:
    with pytest.raises(ValueError, match="cost"):
        buckets.try_take("TRADER-A", cost)


# the edge: a FastAPI dependency and the Retry-After header


def _app(buckets: TokenBuckets) -> FastAPI:
    app = FastAPI()

    async def authenticate(x_party: Annotated[str | None, Header()] = None) -> Principal:
        if x_party is None:
            raise Unauthorized("missing bearer token")
        return Principal(x_party, Role.TRADER)

    Caller = Annotated[Principal, Depends(per_party(buckets, authenticate))]

    @app.exception_handler(OtcError)
    async def _otc_error(_: Request, exc: OtcError) -> JSONResponse:
        # what the API's own handler does, with the header helper
        return JSONResponse(
            {"error": {"code": exc.code, "message": exc.message}},
            status_code=exc.status,
            headers=retry_after_headers(exc),
        )

    @app.get("/ping")
    async def ping(caller: Caller) -> dict[str, str]:
        return {"party": caller.party}

    return app


async def test_over_the_limit_a_party_gets_429_with_retry_after(clock: FakeMonotonic) -> None:
    buckets = TokenBuckets(rate_per_s=0.4, burst=2, monotonic=clock)  # a token every 2.5 s
    transport = httpx.ASGITransport(app=_app(buckets))
    async with httpx.AsyncClient(transport=transport, base_url="http://edge") as client:
        a = {"X-Party": "TRADER-A"}
        statuses = [(await client.get("/ping", headers=a)).status_code for _ in range(2)]
        assert statuses == [200, 200]

        refused = await client.get("/ping", headers=a)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limited"
        assert refused.headers["Retry-After"] == "3"

        other = await client.get("/ping", headers={"X-Party": "TRADER-B"})
        assert other.status_code == 200
        assert other.json() == {"party": "TRADER-B"}
        assert "Retry-After" not in other.headers


async def test_an_unauthenticated_request_is_not_charged_to_anyone(clock: FakeMonotonic) -> None:
    buckets = TokenBuckets(rate_per_s=1, burst=1, monotonic=clock)
    transport = httpx.ASGITransport(app=_app(buckets))
    async with httpx.AsyncClient(transport=transport, base_url="http://edge") as client:
        assert (await client.get("/ping")).status_code == 401
    assert len(buckets) == 0


@pytest.mark.parametrize(
    ("exc", "headers"),
    [
        (RateLimited(0.05), {"Retry-After": "1"}),
        (RateLimited(2.3), {"Retry-After": "3"}),
        (NotYetKnown("soon"), {"Retry-After": "1"}),
        (TransientError("down"), {}),
        (Unauthorized("no"), {}),
    ],
)
def test_retry_after_is_whole_seconds_rounded_up(exc: OtcError, headers: dict[str, str]) -> None:
    assert retry_after_headers(exc) == headers
