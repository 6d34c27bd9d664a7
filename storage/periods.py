"""Calendar periods in a local time zone, as the UTC instants the database compares against.

A day is local midnight to local midnight, so it lasts 23 or 25 hours when the clocks change;
a week runs Monday to Sunday. Bounds are half-open: [start, end).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from storage.states import PeriodKind


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """The first instant of `day` in `tz`, in UTC.

    fold=0 picks the earlier reading of an ambiguous midnight and, where midnight is skipped, the
    offset from before the jump, which lands exactly on the transition: the day's first instant.
    """
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def monday_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


@dataclass(frozen=True)
class Period:
    """A run of whole local days: a day (1) or a Monday-to-Sunday week (7)."""

    kind: PeriodKind
    first_day: date
    tz: ZoneInfo

    @property
    def length_days(self) -> int:
        return 1 if self.kind == PeriodKind.DAILY else 7

    @property
    def days(self) -> list[date]:
        return [self.first_day + timedelta(days=i) for i in range(self.length_days)]

    @property
    def last_day(self) -> date:
        return self.first_day + timedelta(days=self.length_days - 1)

    @property
    def start(self) -> datetime:
        return local_midnight(self.first_day, self.tz)

    @property
    def end(self) -> datetime:
        return local_midnight(self.first_day + timedelta(days=self.length_days), self.tz)

    def day_bounds(self) -> list[datetime]:
        """The UTC midnights between the days: one more than the number of days."""
        return [
            local_midnight(self.first_day + timedelta(days=i), self.tz)
            for i in range(self.length_days + 1)
        ]

    def previous(self) -> Period:
        return Period(self.kind, self.first_day - timedelta(days=self.length_days), self.tz)

    def is_complete(self, now: datetime) -> bool:
        return now >= self.end


def day_containing(day: date, tz: ZoneInfo) -> Period:
    return Period(PeriodKind.DAILY, day, tz)


def week_containing(day: date, tz: ZoneInfo) -> Period:
    return Period(PeriodKind.WEEKLY, monday_of(day), tz)


def local_date(now: datetime, tz: ZoneInfo) -> date:
    if now.tzinfo is None:
        raise ValueError("naive datetime: pass an aware `now`")
    return now.astimezone(tz).date()


def last_complete_day(now: datetime, tz: ZoneInfo) -> Period:
    """Yesterday in `tz`: the latest day that has fully ended at `now`."""
    return day_containing(local_date(now, tz) - timedelta(days=1), tz)


def last_complete_week(now: datetime, tz: ZoneInfo) -> Period:
    """The Monday-to-Sunday week before the one `now` falls in."""
    return week_containing(local_date(now, tz) - timedelta(days=7), tz)


def period_of(kind: PeriodKind, day: date, tz: ZoneInfo) -> Period:
    """The day, or the Monday-to-Sunday week, that contains `day`."""
    return day_containing(day, tz) if kind == PeriodKind.DAILY else week_containing(day, tz)


def last_complete(kind: PeriodKind, now: datetime, tz: ZoneInfo) -> Period:
    """The latest day (or week) that has fully ended at `now`."""
    return last_complete_day(now, tz) if kind == PeriodKind.DAILY else last_complete_week(now, tz)
