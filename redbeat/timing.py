"""Pure schedule math: when is an entry due next?  No I/O, no clock.

Everything here is a function of its arguments: ``now`` is passed in, so the
rules are tested with tables of fixed datetimes.  The scheduler stores the
result as the entry's score (UTC UNIX seconds, sub-second precision).

Rules, in one place:

* An entry's next due time is the schedule's first occurrence strictly after
  its last run (for an interval: last run + interval), computed once.
* A new entry has not run: its first occurrence is the first one after the
  moment it was saved (Celery's behaviour), so saving never fires it at once.
* When occurrences were missed (beat down or behind), the entry runs once and
  then continues from the first occurrence after now.
* Crontab wall-clock times are read in the schedule's time zone.  A time that
  does not exist (spring forward) runs once, at the end of the gap; a time
  that occurs twice (fall back) runs once, at its first occurrence.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Any

from celery.schedules import BaseSchedule, crontab, schedule, solar

from .schedules import rrule

#: Score of an entry the scheduler must not look at: disabled, or no more runs.
NEVER = -1.0
#: Score of an entry that is due now (what ``ZADD ... 0`` by hand means).
NOW = 0.0
#: How far ahead a crontab search looks before giving up (Feb 29 on a given weekday).
_CRON_SEARCH_DAYS = 366 * 29


def utc(dt: datetime) -> datetime:
    """The same instant in UTC; naive datetimes are taken as UTC."""
    if dt.tzinfo is None:
        return dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def to_score(dt: datetime | None) -> float:
    """Sorted-set score for a due time (``NEVER`` for None)."""
    return NEVER if dt is None else utc(dt).timestamp()


def from_score(score: float) -> datetime | None:
    """The due time a score stands for; None for ``NEVER``, the epoch for ``NOW``."""
    if score < 0:
        return None
    return datetime.fromtimestamp(score, tz=timezone.utc)


def next_after(sched: BaseSchedule, moment: datetime, tz: tzinfo = timezone.utc) -> datetime | None:
    """The first occurrence of ``sched`` strictly after ``moment``, or None if none.

    ``tz`` is the zone crontab wall-clock fields are read in.
    """
    moment = utc(moment)
    if isinstance(sched, crontab):
        return cron_next(sched, moment, tz)
    if isinstance(sched, rrule):
        found = sched.next_after(moment)
        return None if found is None else utc(found)
    if isinstance(sched, solar):
        return solar_next(sched, moment)
    if isinstance(sched, schedule):
        return interval_next(sched, moment, tz)
    raise TypeError(f'redbeat cannot compute occurrences of {type(sched).__name__} schedules')


def interval_next(sched: schedule, last: datetime, tz: tzinfo = timezone.utc) -> datetime:
    """Last run plus the interval; ``relative`` rounds down to its resolution, as Celery."""
    due: datetime = last + sched.run_every
    if not sched.relative:
        return due
    seconds = sched.run_every.total_seconds()
    local = due.astimezone(tz)
    if seconds >= 86400:
        local = local.replace(hour=0, minute=0, second=0, microsecond=0)
    elif seconds >= 3600:
        local = local.replace(minute=0, second=0, microsecond=0)
    elif seconds >= 60:
        local = local.replace(second=0, microsecond=0)
    else:
        local = local.replace(microsecond=0)
    return utc(local)


def _wall_exists(wall: datetime, tz: tzinfo) -> bool:
    aware = wall.replace(tzinfo=tz)
    return utc(aware).astimezone(tz).replace(tzinfo=None) == wall


def localize(wall: datetime, tz: tzinfo) -> datetime:
    """A naive wall-clock time in ``tz`` as a UTC instant, by the DST rules above."""
    if tz is timezone.utc:
        return wall.replace(tzinfo=timezone.utc)
    if not _wall_exists(wall, tz):
        # Spring forward: walk to the first wall-clock minute that exists.
        step = wall.replace(second=0, microsecond=0)
        for _ in range(24 * 60):
            step += timedelta(minutes=1)
            if _wall_exists(step, tz):
                return utc(step.replace(tzinfo=tz))
    return utc(wall.replace(tzinfo=tz, fold=0))


def _cron_days(c: crontab, start: date) -> Any:
    day = start
    for _ in range(_CRON_SEARCH_DAYS):
        if (
            day.month in c.month_of_year
            and day.day in c.day_of_month
            and day.isoweekday() % 7 in c.day_of_week
        ):
            yield day
        day += timedelta(days=1)


def cron_next(c: crontab, after: datetime, tz: tzinfo = timezone.utc) -> datetime | None:
    """The first crontab match strictly after ``after``, wall clock read in ``tz``.

    Celery's rule: a day matches when month, day of month *and* day of week do.
    """
    after = utc(after)
    local = after.astimezone(tz).replace(tzinfo=None, second=0, microsecond=0)
    hours, minutes = sorted(c.hour), sorted(c.minute)
    for day in _cron_days(c, local.date()):
        for hour in hours:
            if day == local.date() and hour < local.hour:
                continue
            for minute in minutes:
                wall = datetime(day.year, day.month, day.day, hour, minute)
                if wall < local:
                    continue
                instant = localize(wall, tz)
                if instant > after:
                    return instant
    return None


def solar_next(sched: solar, after: datetime) -> datetime | None:
    """The first solar event strictly after ``after`` (searching up to a year)."""
    import ephem  # optional dependency, needed only for solar schedules

    start: Any = ephem.Date(utc(after).replace(tzinfo=None))
    kwargs = {'use_center': True} if sched.use_center else {}
    for _ in range(366):
        try:
            found = getattr(sched.cal, sched.method)(ephem.Sun(), start=start, **kwargs)
        except ephem.CircumpolarError:
            start = sched.cal.next_antitransit(ephem.Sun(), start=start)
            continue
        moment = found.datetime().replace(tzinfo=timezone.utc)
        if moment > after:
            return moment  # type: ignore[no-any-return]
        start = ephem.Date(found + ephem.second)
    return None


def first_due(
    sched: BaseSchedule, saved_at: datetime, tz: tzinfo = timezone.utc
) -> datetime | None:
    """When a new (never run) entry first fires: its first occurrence after saving."""
    return next_after(sched, saved_at, tz)


def advance(
    sched: BaseSchedule,
    scheduled_at: datetime,
    now: datetime,
    tz: tzinfo = timezone.utc,
) -> tuple[datetime, datetime | None]:
    """``(last_run_at, next due)`` once the occurrence at ``scheduled_at`` is sent.

    Normally the run is recorded at its scheduled time and the next due time
    is the following occurrence.  If that one is already past (occurrences
    were missed), the run is recorded at ``now`` and the entry continues with
    the first occurrence after it: missed runs are sent once, not each.
    Either way the next due time is ``next_after(sched, last_run_at)``, which
    is also what celery-redbeat 2.x computes from the stored run state.
    """
    following = next_after(sched, scheduled_at, tz)
    if following is not None and following <= utc(now):
        return utc(now), next_after(sched, now, tz)
    return utc(scheduled_at), following


def due_after_change(
    sched: BaseSchedule,
    last_run_at: datetime | None,
    now: datetime,
    tz: tzinfo = timezone.utc,
) -> datetime | None:
    """Due time of an entry whose definition was saved (again) at ``now``.

    With no run yet, the first occurrence after ``now``; otherwise the next
    occurrence after the last run, which may be in the past (then it is due).
    """
    if last_run_at is None:
        return first_due(sched, now, tz)
    return next_after(sched, last_run_at, tz)
