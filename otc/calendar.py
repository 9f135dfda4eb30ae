"""Trading sessions per instrument: when an RFQ may be asked, and which days count
towards a value date.

A schedule is a set of weekly windows in one time zone, so a session that opens
at 17:00 in New York opens at 17:00 New York time on both sides of a daylight
saving change. Crypto pairs trade 24/7; FX trades 24/5, from Sunday 17:00 to
Friday 17:00 America/New_York; anything else gets configured daily hours
(`daily_hours`). Pure: times come in as arguments, always timezone-aware.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

MONDAY, TUESDAY, WEDNESDAY, THURSDAY, FRIDAY, SATURDAY, SUNDAY = range(7)
WEEKDAYS = frozenset(range(MONDAY, SATURDAY))
EVERY_DAY = frozenset(range(7))

CalendarName = Literal["exchange", "always_open"]


@dataclass(frozen=True, slots=True)
class WeeklyWindow:
    """Open from `open_day` at `open_at` to the next `close_day` at `close_at`,
    local time; a window that closes when it opens lasts a whole week."""

    open_day: int
    open_at: time
    close_day: int
    close_at: time


@dataclass(frozen=True, slots=True)
class Schedule:
    name: str
    zone: str
    windows: tuple[WeeklyWindow, ...]  # none at all: always open
    settlement_days: frozenset[int]  # weekdays that count towards a value date

    def is_open(self, now: datetime) -> bool:
        return self.closed_until(now) is None

    def closed_until(self, now: datetime) -> datetime | None:
        """None while a session is open, else when the next one opens (UTC)."""
        _require_aware(now)
        if not self.windows:
            return None
        upcoming = []
        for opens, closes in self._sessions_around(now):
            if opens <= now < closes:
                return None
            if opens > now:
                upcoming.append(opens)
        return min(upcoming)

    def _sessions_around(self, now: datetime) -> list[tuple[datetime, datetime]]:
        zone = ZoneInfo(self.zone)
        local = now.astimezone(zone)
        monday = local.date() - timedelta(days=local.weekday())
        sessions = []
        for week in (-1, 0, 1):
            for w in self.windows:
                open_date = monday + timedelta(days=7 * week + w.open_day)
                length = (w.close_day - w.open_day) % 7
                if length == 0 and w.close_at <= w.open_at:
                    length = 7
                opens = datetime.combine(open_date, w.open_at, tzinfo=zone)
                closes = datetime.combine(
                    open_date + timedelta(days=length), w.close_at, tzinfo=zone
                )
                sessions.append((opens.astimezone(UTC), closes.astimezone(UTC)))
        return sessions

    def value_date(self, traded_at: datetime, settlement_days: int) -> date:
        """The UTC trade date moved `settlement_days` settlement days on (T+n)."""
        _require_aware(traded_at)
        if settlement_days < 0:
            raise ValueError(f"settlement_days must not be negative: {settlement_days}")
        day = traded_at.astimezone(UTC).date()
        left = settlement_days
        while left:
            day += timedelta(days=1)
            if day.weekday() in self.settlement_days:
                left -= 1
        return day


def daily_hours(
    name: str, zone: str, open_at: time, close_at: time, days: frozenset[int] = WEEKDAYS
) -> Schedule:
    """A session on each of `days`, from `open_at` to `close_at` (the next day when
    it closes before it opens)."""
    overnight = close_at <= open_at
    windows = tuple(
        WeeklyWindow(day, open_at, (day + 1) % 7 if overnight else day, close_at)
        for day in sorted(days)
    )
    return Schedule(name, zone, windows, frozenset(days))


CRYPTO = Schedule("crypto 24/7", "UTC", (), EVERY_DAY)
FX = Schedule(
    "FX 24/5",
    "America/New_York",
    (WeeklyWindow(SUNDAY, time(17), FRIDAY, time(17)),),
    WEEKDAYS,
)
ALWAYS = Schedule("always open", "UTC", (), EVERY_DAY)


class NoSchedule(KeyError):
    """An instrument with no trading sessions configured: it never trades."""


@dataclass(frozen=True, slots=True)
class TradingCalendar:
    schedules: Mapping[str, Schedule]
    default: Schedule | None = None  # for instruments not listed; None: refuse them

    def schedule(self, symbol: str) -> Schedule:
        found = self.schedules.get(symbol, self.default)
        if found is None:
            raise NoSchedule(f"no trading sessions configured for {symbol}")
        return found

    def closed_until(self, symbol: str, now: datetime) -> datetime | None:
        return self.schedule(symbol).closed_until(now)

    def value_date(self, symbol: str, traded_at: datetime, settlement_days: int) -> date:
        return self.schedule(symbol).value_date(traded_at, settlement_days)


EXCHANGE = TradingCalendar({"BTC-USD": CRYPTO, "ETH-USD": CRYPTO, "EUR-USD": FX})
# Every instrument always trades: for test platforms, which run on any day of the week.
ALWAYS_OPEN = TradingCalendar({}, default=ALWAYS)

CALENDARS: dict[CalendarName, TradingCalendar] = {
    "exchange": EXCHANGE,
    "always_open": ALWAYS_OPEN,
}


def _require_aware(moment: datetime) -> None:
    if moment.tzinfo is None:
        raise ValueError("trading calendar times must be timezone-aware")
