"""Days and weeks in the team's time zone, as the UTC bounds the database compares against."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage.periods import (
    day_containing,
    last_complete_day,
    last_complete_week,
    local_midnight,
    week_containing,
)

NEW_YORK = ZoneInfo("America/New_York")
SANTIAGO = ZoneInfo("America/Santiago")  # changes its clocks at midnight
UTC_ZONE = ZoneInfo("UTC")
ZONES = [NEW_YORK, SANTIAGO, ZoneInfo("Europe/Paris"), ZoneInfo("Australia/Lord_Howe"), UTC_ZONE]


def test_spring_forward_day_lasts_23_hours() -> None:
    day = day_containing(date(2026, 3, 8), NEW_YORK)
    assert day.start == datetime(2026, 3, 8, 5, tzinfo=UTC)  # midnight EST
    assert day.end == datetime(2026, 3, 9, 4, tzinfo=UTC)  # midnight EDT
    assert day.end - day.start == timedelta(hours=23)


def test_fall_back_day_lasts_25_hours() -> None:
    day = day_containing(date(2026, 11, 1), NEW_YORK)
    assert day.start == datetime(2026, 11, 1, 4, tzinfo=UTC)
    assert day.end == datetime(2026, 11, 2, 5, tzinfo=UTC)
    assert day.end - day.start == timedelta(hours=25)


def test_day_whose_midnight_is_skipped_starts_when_the_clocks_jump() -> None:
    # Chile moves 00:00 -> 01:00 on 6 Sep 2026: the day's first instant is 01:00 -03 = 04:00Z.
    day = day_containing(date(2026, 9, 6), SANTIAGO)
    assert day.start == datetime(2026, 9, 6, 4, tzinfo=UTC)
    assert day.end - day.start == timedelta(hours=23)
    assert day_containing(date(2026, 9, 5), SANTIAGO).end == day.start


def test_week_runs_monday_to_sunday_across_a_clock_change() -> None:
    week = week_containing(date(2026, 3, 11), NEW_YORK)  # a Wednesday
    assert week.first_day == date(2026, 3, 9)
    assert week.last_day == date(2026, 3, 15)
    assert week.days == [date(2026, 3, 9) + timedelta(days=i) for i in range(7)]
    spring_week = week_containing(date(2026, 3, 8), NEW_YORK)  # the Sunday of the change
    assert spring_week.first_day == date(2026, 3, 2)
    assert spring_week.end - spring_week.start == timedelta(days=7, hours=-1)


def test_day_bounds_are_the_local_midnights() -> None:
    week = week_containing(date(2026, 11, 1), NEW_YORK)
    bounds = week.day_bounds()
    assert len(bounds) == 8
    assert bounds[0] == week.start and bounds[-1] == week.end
    assert [b.astimezone(NEW_YORK).hour for b in bounds] == [0] * 8


def test_previous_period() -> None:
    assert day_containing(date(2026, 3, 1), UTC_ZONE).previous().first_day == date(2026, 2, 28)
    assert week_containing(date(2026, 3, 4), UTC_ZONE).previous().first_day == date(2026, 2, 23)


def test_last_complete_day_is_yesterday_in_the_zone_not_in_utc() -> None:
    # 03:00 UTC on 10 Mar is still 9 Mar in New York: the last complete day there is 8 Mar.
    now = datetime(2026, 3, 10, 3, tzinfo=UTC)
    assert last_complete_day(now, NEW_YORK).first_day == date(2026, 3, 8)
    assert last_complete_day(now, UTC_ZONE).first_day == date(2026, 3, 9)


def test_last_complete_week_is_the_week_before_this_one() -> None:
    monday_morning = datetime(2026, 3, 9, 0, 0, 1, tzinfo=NEW_YORK)
    assert last_complete_week(monday_morning, NEW_YORK).first_day == date(2026, 3, 2)
    sunday_night = datetime(2026, 3, 8, 23, 59, tzinfo=NEW_YORK)
    assert last_complete_week(sunday_night, NEW_YORK).first_day == date(2026, 2, 23)


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        last_complete_day(datetime(2026, 3, 9), UTC_ZONE)


def test_is_complete() -> None:
    day = day_containing(date(2026, 3, 8), NEW_YORK)
    assert not day.is_complete(day.end - timedelta(microseconds=1))
    assert day.is_complete(day.end)


@given(
    day=st.dates(min_value=date(2000, 1, 1), max_value=date(2037, 12, 31)),
    zone=st.sampled_from(ZONES),
)
def test_days_tile_time_without_gaps_or_overlaps(day: date, zone: ZoneInfo) -> None:
    today = day_containing(day, zone)
    assert today.end == day_containing(day + timedelta(days=1), zone).start
    assert timedelta(hours=22) <= today.end - today.start <= timedelta(hours=26)
    # The first instant of the day reads as that day locally, and the instant before does not.
    assert today.start.astimezone(zone).date() == day
    assert (today.start - timedelta(microseconds=1)).astimezone(zone).date() < day
    assert local_midnight(day, zone) == today.start
