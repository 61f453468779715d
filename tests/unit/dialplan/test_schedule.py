"""Tests for cloudpbx.dialplan.schedule (DP-1 schedules, DP-4 "schedules" row)."""

import datetime as dt
from zoneinfo import ZoneInfoNotFoundError

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloudpbx.dialplan import (
    WHOLE_DAY,
    DatedException,
    Schedule,
    TimeRange,
    matches,
    opening,
    to_local,
)

WEEKDAYS = frozenset(range(5))  # Monday … Friday
FRIDAY = 4


def hours(start: str, end: str) -> TimeRange:
    return TimeRange(start=dt.time.fromisoformat(start), end=dt.time.fromisoformat(end))


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def day(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


OFFICE = Schedule(days=WEEKDAYS, ranges=(hours("09:00", "18:00"),))
LUNCH_BREAK = Schedule(days=WEEKDAYS, ranges=(hours("09:00", "13:00"), hours("14:00", "18:00")))
FRIDAY_NIGHT = Schedule(days=frozenset({FRIDAY}), ranges=(hours("22:00", "06:00"),))
MONDAY_EVENING = Schedule(days=frozenset({0}), ranges=(hours("18:00", "00:00"),))
MONDAY_FROM_NINE_FOR_24H = Schedule(days=frozenset({0}), ranges=(hours("09:00", "09:00"),))
WEEKENDS_ALL_DAY = Schedule(days=frozenset({5, 6}))
NEVER = Schedule(days=frozenset())

# Russian production calendar: 1 January 2026 (Thursday) is a holiday; Saturday 1 November
# 2025 was a working day (transferred to Monday 3 November); Saturday 28 December 2024 too.
OFFICE_RU = Schedule(
    days=WEEKDAYS,
    ranges=(hours("09:00", "18:00"),),
    exceptions=(
        DatedException(date=day("2026-01-01"), open=False),
        DatedException(date=day("2025-11-01"), open=True, ranges=(hours("10:00", "15:00"),)),
        DatedException(date=day("2024-12-28"), open=True),
    ),
)
# A night line every day 22:00–06:00, closed on the night that starts on 1 January 2026.
NIGHT_LINE = Schedule(
    ranges=(hours("22:00", "06:00"),),
    exceptions=(DatedException(date=day("2026-01-01"), open=False),),
)


@pytest.mark.parametrize(
    ("schedule", "when", "expected"),
    [
        pytest.param(Schedule.ALWAYS, "2026-01-01T03:00", True, id="always"),
        pytest.param(Schedule(), "2026-06-14T23:59:59", True, id="default-is-always"),
        pytest.param(OFFICE, "2026-01-05T09:00", True, id="start-inclusive"),
        pytest.param(OFFICE, "2026-01-05T08:59:59", False, id="before-start"),
        pytest.param(OFFICE, "2026-01-05T17:59:59", True, id="just-before-end"),
        pytest.param(OFFICE, "2026-01-05T18:00", False, id="end-exclusive"),
        pytest.param(OFFICE, "2026-01-03T12:00", False, id="saturday-not-a-day"),
        pytest.param(LUNCH_BREAK, "2026-01-05T13:30", False, id="between-ranges"),
        pytest.param(LUNCH_BREAK, "2026-01-05T14:00", True, id="second-range"),
        pytest.param(WEEKENDS_ALL_DAY, "2026-01-03T00:00", True, id="no-ranges-whole-day"),
        pytest.param(WEEKENDS_ALL_DAY, "2026-01-04T23:59:59", True, id="whole-day-to-midnight"),
        pytest.param(WEEKENDS_ALL_DAY, "2026-01-05T00:00", False, id="whole-day-ends"),
        pytest.param(NEVER, "2026-01-05T12:00", False, id="no-days"),
    ],
)
def test_week_days_and_half_open_ranges(schedule: Schedule, when: str, expected: bool) -> None:
    """DP-4 "schedules": time ranges are [start, end) on the schedule's days of week."""
    assert matches(schedule, at(when)) is expected


@pytest.mark.parametrize(
    ("schedule", "when", "expected"),
    [
        pytest.param(FRIDAY_NIGHT, "2026-01-02T22:00", True, id="fri-22:00-starts"),
        pytest.param(FRIDAY_NIGHT, "2026-01-02T21:59", False, id="fri-before-start"),
        pytest.param(FRIDAY_NIGHT, "2026-01-03T03:00", True, id="sat-03:00-started-friday"),
        pytest.param(FRIDAY_NIGHT, "2026-01-03T05:59:59", True, id="sat-before-end"),
        pytest.param(FRIDAY_NIGHT, "2026-01-03T06:00", False, id="sat-end-exclusive"),
        pytest.param(FRIDAY_NIGHT, "2026-01-03T22:30", False, id="sat-night-not-a-day"),
        pytest.param(FRIDAY_NIGHT, "2026-01-02T03:00", False, id="fri-morning-from-thursday"),
        pytest.param(MONDAY_EVENING, "2026-01-05T23:59:59", True, id="until-midnight"),
        pytest.param(MONDAY_EVENING, "2026-01-06T00:00", False, id="midnight-excluded"),
        pytest.param(MONDAY_FROM_NINE_FOR_24H, "2026-01-06T08:59", True, id="start-eq-end-24h"),
        pytest.param(MONDAY_FROM_NINE_FOR_24H, "2026-01-06T09:00", False, id="24h-then-ends"),
    ],
)
def test_range_past_midnight_belongs_to_its_start_day(
    schedule: Schedule, when: str, expected: bool
) -> None:
    """DP-4 "schedules": a range past midnight belongs to the day it starts."""
    assert matches(schedule, at(when)) is expected


@pytest.mark.parametrize(
    ("schedule", "when", "expected"),
    [
        pytest.param(OFFICE_RU, "2026-01-01T12:00", False, id="holiday-thursday-closed"),
        pytest.param(OFFICE_RU, "2026-01-02T12:00", True, id="next-day-normal"),
        pytest.param(OFFICE_RU, "2025-11-01T12:00", True, id="working-saturday-open"),
        pytest.param(OFFICE_RU, "2025-11-01T09:30", False, id="working-saturday-own-ranges"),
        pytest.param(OFFICE_RU, "2025-11-01T15:00", False, id="working-saturday-end-exclusive"),
        pytest.param(OFFICE_RU, "2024-12-28T07:00", True, id="open-no-ranges-whole-day"),
        pytest.param(OFFICE_RU, "2025-11-08T12:00", False, id="other-saturday-closed"),
        pytest.param(NIGHT_LINE, "2026-01-01T03:00", True, id="holiday-morning-from-dec-31"),
        pytest.param(NIGHT_LINE, "2026-01-01T23:00", False, id="holiday-night-closed"),
        pytest.param(NIGHT_LINE, "2026-01-02T03:00", False, id="morning-after-holiday-night"),
        pytest.param(NIGHT_LINE, "2026-01-02T22:00", True, id="next-night-open"),
    ],
)
def test_dated_exceptions_override_week_days(schedule: Schedule, when: str, expected: bool) -> None:
    """DP-4 "schedules": dated exceptions (holidays, transferred working days) win over week
    days, for the date a range starts on."""
    assert matches(schedule, at(when)) is expected


@pytest.mark.parametrize(
    ("schedule", "date", "expected"),
    [
        pytest.param(OFFICE_RU, "2026-01-01", (), id="holiday"),
        pytest.param(OFFICE_RU, "2026-01-02", (hours("09:00", "18:00"),), id="weekday"),
        pytest.param(OFFICE_RU, "2024-12-28", (WHOLE_DAY,), id="open-whole-day"),
        pytest.param(OFFICE_RU, "2026-01-03", (), id="weekend"),
        pytest.param(Schedule.ALWAYS, "2026-01-03", (WHOLE_DAY,), id="always"),
    ],
)
def test_opening_of_a_day(schedule: Schedule, date: str, expected: tuple[TimeRange, ...]) -> None:
    """DP-1: the ranges a schedule opens on one date, after exceptions."""
    assert opening(schedule, day(date)) == expected


def test_first_of_duplicate_exceptions_wins() -> None:
    """DP-4 "schedules": duplicates are rejected by DP-5; matching still has one answer."""
    schedule = Schedule(
        exceptions=(
            DatedException(date=day("2026-01-01"), open=False),
            DatedException(date=day("2026-01-01"), open=True),
        )
    )
    assert not matches(schedule, at("2026-01-01T12:00"))


def test_tzinfo_of_local_time_is_ignored() -> None:
    """DP-4 "schedules": matching reads the wall clock only."""
    aware = to_local(at("2026-01-05T06:30+00:00"), "Europe/Moscow")
    assert matches(OFFICE, aware) == matches(OFFICE, aware.replace(tzinfo=None)) is True


@pytest.mark.parametrize(
    ("utc", "zone", "expected_local"),
    [
        pytest.param("2026-01-15T06:00Z", "Europe/Moscow", "2026-01-15T09:00+03:00", id="msk-jan"),
        pytest.param("2026-07-15T06:00Z", "Europe/Moscow", "2026-07-15T09:00+03:00", id="msk-jul"),
        pytest.param("2026-03-29T00:59Z", "Europe/Berlin", "2026-03-29T01:59+01:00", id="be-cet"),
        pytest.param("2026-03-29T01:00Z", "Europe/Berlin", "2026-03-29T03:00+02:00", id="be-cest"),
        pytest.param("2026-10-25T00:30Z", "Europe/Berlin", "2026-10-25T02:30+02:00", id="be-fold0"),
        pytest.param("2026-10-25T01:30Z", "Europe/Berlin", "2026-10-25T02:30+01:00", id="be-fold1"),
    ],
)
def test_to_local(utc: str, zone: str, expected_local: str) -> None:
    """DP-4: schedules are checked in the client's time zone."""
    local = to_local(at(utc), zone)
    assert local.isoformat(timespec="seconds") == at(expected_local).isoformat()
    assert local.utcoffset() == at(expected_local).utcoffset()


@pytest.mark.parametrize(
    ("utc", "zone", "expected"),
    [
        pytest.param("2026-01-15T05:59Z", "Europe/Moscow", False, id="msk-winter-08:59"),
        pytest.param("2026-01-15T06:00Z", "Europe/Moscow", True, id="msk-winter-09:00"),
        pytest.param("2026-07-15T06:00Z", "Europe/Moscow", True, id="msk-summer-same-utc"),
        pytest.param("2026-07-15T15:00Z", "Europe/Moscow", False, id="msk-summer-18:00"),
        pytest.param("2026-03-27T07:30Z", "Europe/Berlin", False, id="berlin-fri-cet-08:30"),
        pytest.param("2026-03-27T08:00Z", "Europe/Berlin", True, id="berlin-fri-cet-09:00"),
        pytest.param("2026-03-30T07:30Z", "Europe/Berlin", True, id="berlin-mon-cest-09:30"),
        pytest.param("2026-03-30T16:00Z", "Europe/Berlin", False, id="berlin-mon-cest-18:00"),
        pytest.param("2026-03-27T16:30Z", "Europe/Berlin", True, id="berlin-fri-cet-17:30"),
    ],
)
def test_office_hours_across_time_zones(utc: str, zone: str, expected: bool) -> None:
    """DP-4: the same instant opens or closes a step depending on the client's zone and DST;
    Moscow has no DST, Berlin moves its office hours by an hour in UTC."""
    assert matches(OFFICE, to_local(at(utc), zone)) is expected


@pytest.mark.parametrize(
    ("sunday_range", "utc", "expected"),
    [
        pytest.param(hours("02:00", "04:00"), "2026-03-29T00:30Z", False, id="spring-01:30-cet"),
        pytest.param(hours("02:00", "04:00"), "2026-03-29T01:00Z", True, id="spring-03:00-cest"),
        pytest.param(hours("02:00", "03:00"), "2026-03-29T01:00Z", False, id="spring-hour-skipped"),
        pytest.param(hours("02:00", "03:00"), "2026-10-25T00:30Z", True, id="autumn-first-02:30"),
        pytest.param(hours("02:00", "03:00"), "2026-10-25T01:30Z", True, id="autumn-again-02:30"),
        pytest.param(hours("02:00", "03:00"), "2026-10-25T02:00Z", False, id="autumn-03:00-cet"),
    ],
)
def test_berlin_dst_wall_clock(sunday_range: TimeRange, utc: str, expected: bool) -> None:
    """DP-4: ranges follow the wall clock of a DST zone: on the spring change 02:00–03:00 never
    happens; on the autumn change the repeated hour matches twice."""
    sunday_night = Schedule(days=frozenset({6}), ranges=(sunday_range,))
    assert matches(sunday_night, to_local(at(utc), "Europe/Berlin")) is expected


def test_to_local_rejects_naive_and_unknown_zone() -> None:
    """DP-4: an instant without a zone is ambiguous; an unknown zone is an error."""
    with pytest.raises(ValueError, match="aware"):
        to_local(at("2026-01-01T00:00"), "Europe/Moscow")
    with pytest.raises(ZoneInfoNotFoundError):
        to_local(at("2026-01-01T00:00Z"), "Mars/Olympus_Mons")


def test_time_range_rejects_aware_times() -> None:
    """DP-1: ranges are wall-clock times; the zone is the client's, not the range's."""
    assert str(hours("22:00", "06:00")) == "22:00–06:00"
    with pytest.raises(ValueError, match="tzinfo"):
        TimeRange(start=dt.time(9, tzinfo=dt.UTC), end=dt.time(18))


def as_time(minutes: int) -> dt.time:
    return dt.time(minutes // 60, minutes % 60)


_minutes = st.integers(min_value=0, max_value=24 * 60 - 1)


@given(
    start=_minutes,
    end=_minutes,
    days=st.frozensets(st.integers(min_value=0, max_value=6)),
    moment=st.datetimes(min_value=dt.datetime(2000, 1, 2), max_value=dt.datetime(2100, 1, 1)),
)
def test_matches_agrees_with_interval_arithmetic(
    start: int, end: int, days: frozenset[int], moment: dt.datetime
) -> None:
    """DP-4 "schedules": a range is the interval [day + start, day + start + length) of the day
    it starts on, its length (end - start) mod 24 h, and 24 h when end == start."""
    schedule = Schedule(days=days, ranges=(TimeRange(start=as_time(start), end=as_time(end)),))
    length = dt.timedelta(minutes=(end - start) % (24 * 60) or 24 * 60)
    expected = False
    for back in (0, 1):
        begin_day = moment.date() - dt.timedelta(days=back)
        begin = dt.datetime.combine(begin_day, as_time(start))
        if begin_day.weekday() in days and begin <= moment < begin + length:
            expected = True
    assert matches(schedule, moment) is expected
