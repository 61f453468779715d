"""Step schedules (DP-1, DP-4 "schedules"): does a schedule match a local wall-clock time?

Pure: the caller passes the time. Rules (DP-4, normative):

- time ranges are half-open, [start, end);
- a range past midnight belongs to the day it starts on, so Friday 22:00–06:00 matches
  Saturday 03:00 — hence the previous day's ranges are checked too;
- dated exceptions (holidays, Russian transferred working days) override the week days of the
  date the range *starts* on.

Matching works on the wall clock of the client's time zone (`to_local`): on a DST change a
range follows the clock, so 09:00–18:00 is 09:00–18:00 local on both sides of the change; a
range inside the skipped hour never matches that day, one inside the repeated hour matches
both times.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from cloudpbx.dialplan.model import WHOLE_DAY, DatedException, Schedule, TimeRange

_ONE_DAY = dt.timedelta(days=1)


def to_local(utc_dt: dt.datetime, tz_name: str) -> dt.datetime:
    """Convert an aware instant to the wall clock of ``tz_name`` (the client's time zone).

    Raises ValueError for a naive datetime (an instant without a zone is ambiguous) and
    `zoneinfo.ZoneInfoNotFoundError` for an unknown zone name.
    """
    if utc_dt.tzinfo is None or utc_dt.utcoffset() is None:
        raise ValueError("to_local needs an aware datetime (UTC)")
    return utc_dt.astimezone(ZoneInfo(tz_name))


def matches(schedule: Schedule, local_dt: dt.datetime) -> bool:
    """True when ``schedule`` is open at ``local_dt``, a wall-clock time in the client's zone.

    Any tzinfo on ``local_dt`` is ignored: only its date and time of day are used.
    """
    if schedule.is_always:
        return True
    day = local_dt.date()
    moment = local_dt.time()  # naive: .time() drops tzinfo
    today = opening(schedule, day)
    if any(_covers_same_day(r, moment) for r in today):
        return True
    yesterday = opening(schedule, day - _ONE_DAY)
    return any(_covers_next_day(r, moment) for r in yesterday)


def opening(schedule: Schedule, day: dt.date) -> tuple[TimeRange, ...]:
    """The ranges that start on ``day``: () when closed, (`WHOLE_DAY`,) when open all day.

    A dated exception for ``day`` wins over the week days; when a date has several exceptions
    the first one is used (the validator rejects duplicates).
    """
    exception = _exception_for(schedule, day)
    if exception is not None:
        if not exception.open:
            return ()
        return exception.ranges or (WHOLE_DAY,)
    if day.weekday() not in schedule.days:
        return ()
    return schedule.ranges or (WHOLE_DAY,)


def _exception_for(schedule: Schedule, day: dt.date) -> DatedException | None:
    return next((e for e in schedule.exceptions if e.date == day), None)


def _covers_same_day(time_range: TimeRange, moment: dt.time) -> bool:
    if moment < time_range.start:
        return False
    return time_range.crosses_midnight or moment < time_range.end


def _covers_next_day(time_range: TimeRange, moment: dt.time) -> bool:
    """The part of a range started the day before that runs past midnight into today."""
    return time_range.crosses_midnight and moment < time_range.end
