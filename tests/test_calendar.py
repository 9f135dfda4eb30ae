"""Trading sessions and value dates at fixed times, with no server; and the edge's
refusal of an RFQ outside its instrument's session."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

import pytest

from otc.calendar import (
    ALWAYS_OPEN,
    CALENDARS,
    CRYPTO,
    EXCHANGE,
    FX,
    WEEKDAYS,
    NoSchedule,
    daily_hours,
)
from otc.errors import Conflict
from otc.instruments import INSTRUMENTS
from rfq_service.domain.rfq import validate_rfq

# January 2026: Friday the 9th, Saturday the 10th, Sunday the 11th. New York is UTC-5.
FRIDAY_1659_NY = datetime(2026, 1, 9, 21, 59, tzinfo=UTC)
FRIDAY_1700_NY = datetime(2026, 1, 9, 22, 0, tzinfo=UTC)
SATURDAY_NOON = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
SUNDAY_1659_NY = datetime(2026, 1, 11, 21, 59, tzinfo=UTC)
SUNDAY_1700_NY = datetime(2026, 1, 11, 22, 0, tzinfo=UTC)


def test_crypto_trades_around_the_clock() -> None:
    for moment in (FRIDAY_1700_NY, SATURDAY_NOON, SUNDAY_1659_NY):
        assert CRYPTO.closed_until(moment) is None


@pytest.mark.parametrize(
    "moment", [FRIDAY_1659_NY, SUNDAY_1700_NY, datetime(2026, 1, 7, 3, tzinfo=UTC)]
)
def test_fx_is_open_from_sunday_to_friday_17_00_new_york(moment: datetime) -> None:
    assert FX.is_open(moment)


@pytest.mark.parametrize("moment", [FRIDAY_1700_NY, SATURDAY_NOON, SUNDAY_1659_NY])
def test_fx_closed_over_the_weekend_reopens_sunday_17_00_new_york(moment: datetime) -> None:
    assert FX.closed_until(moment) == SUNDAY_1700_NY


def test_the_reopening_follows_new_york_daylight_saving_time() -> None:
    # Daylight saving starts on Sunday 8 March 2026: the market closes at 17:00 EST
    # (22:00 UTC) on Friday and reopens at 17:00 EDT (21:00 UTC) on Sunday.
    assert FX.is_open(datetime(2026, 3, 6, 21, 59, tzinfo=UTC))
    assert FX.closed_until(datetime(2026, 3, 6, 22, 0, tzinfo=UTC)) == datetime(
        2026, 3, 8, 21, 0, tzinfo=UTC
    )
    assert FX.is_open(datetime(2026, 3, 8, 21, 0, tzinfo=UTC))


def test_configured_daily_hours_open_and_close_each_weekday() -> None:
    london = daily_hours("LSE", "Europe/London", time(8), time(16, 30))
    assert london.is_open(datetime(2026, 1, 7, 8, 0, tzinfo=UTC))
    assert london.closed_until(datetime(2026, 1, 7, 16, 30, tzinfo=UTC)) == datetime(
        2026, 1, 8, 8, 0, tzinfo=UTC
    )
    # Friday evening: the next session is Monday morning
    assert london.closed_until(datetime(2026, 1, 9, 17, tzinfo=UTC)) == datetime(
        2026, 1, 12, 8, 0, tzinfo=UTC
    )


def test_an_overnight_session_closes_the_next_morning() -> None:
    night = daily_hours("night", "UTC", time(22), time(6), days=frozenset({0}))
    assert night.is_open(datetime(2026, 1, 6, 5, 59, tzinfo=UTC))  # Monday 22:00 to Tuesday 06:00
    assert night.closed_until(datetime(2026, 1, 6, 6, tzinfo=UTC)) == datetime(
        2026, 1, 12, 22, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("schedule", "traded", "days", "value"),
    [
        (FX, datetime(2026, 1, 8, 15, tzinfo=UTC), 2, date(2026, 1, 12)),  # Thu T+2: Monday
        (FX, datetime(2026, 1, 9, 15, tzinfo=UTC), 1, date(2026, 1, 12)),  # Fri T+1: Monday
        (CRYPTO, datetime(2026, 1, 9, 15, tzinfo=UTC), 2, date(2026, 1, 11)),  # Fri T+2: Sunday
        (FX, datetime(2026, 1, 10, 15, tzinfo=UTC), 0, date(2026, 1, 10)),  # T+0: the trade date
    ],
)
def test_value_dates_count_settlement_days(
    schedule: Any, traded: datetime, days: int, value: date
) -> None:
    assert schedule.value_date(traded, days) == value


def test_times_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        FX.closed_until(datetime(2026, 1, 10, 12))  # noqa: DTZ001


def test_every_instrument_has_exchange_sessions() -> None:
    assert set(INSTRUMENTS) <= set(EXCHANGE.schedules)
    assert EXCHANGE.schedule("EUR-USD") is FX
    assert EXCHANGE.schedule("BTC-USD") is CRYPTO
    with pytest.raises(NoSchedule, match="DOGE-USD"):
        EXCHANGE.schedule("DOGE-USD")


def test_the_always_open_calendar_opens_every_instrument_every_day() -> None:
    assert CALENDARS["always_open"] is ALWAYS_OPEN
    assert ALWAYS_OPEN.closed_until("EUR-USD", SATURDAY_NOON) is None
    assert ALWAYS_OPEN.schedule("EUR-USD").settlement_days != WEEKDAYS


def _rfq(instrument: str, now: datetime, **over: Any) -> Any:
    return validate_rfq(
        requester="TRADER-A",
        client_rfq_id="c-1",
        instrument=instrument,
        side="buy",
        quantity="1000000" if instrument == "EUR-USD" else "1",
        counterparties=None,
        response_window_ms=None,
        anonymous=False,
        enabled_makers=("MM-1",),
        now=now,
        **over,
    )


def test_an_fx_rfq_on_a_saturday_is_refused_naming_the_next_session() -> None:
    with pytest.raises(Conflict) as refused:
        _rfq("EUR-USD", SATURDAY_NOON)
    assert refused.value.code == "market_closed"
    assert refused.value.status == 409
    assert "EUR-USD" in refused.value.message
    assert "2026-01-11T22:00:00Z" in refused.value.message


def test_crypto_and_open_fx_rfqs_pass() -> None:
    assert _rfq("BTC-USD", SATURDAY_NOON).instrument == "BTC-USD"
    assert _rfq("EUR-USD", SUNDAY_1700_NY).instrument == "EUR-USD"
    assert _rfq("EUR-USD", SATURDAY_NOON, calendar=ALWAYS_OPEN).instrument == "EUR-USD"
