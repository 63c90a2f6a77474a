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

import hashlib
import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Any

from celery.schedules import BaseSchedule, crontab, schedule, solar

from .policy import DEFAULT as DEFAULT_POLICY
from .policy import SKIP_GRACE, Policy
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


# --- policies: bounds, anchors, missed runs, jitter --------------------------------

#: The most due occurrences one run looks at (beat down a day, entry every second).
_MAX_CATCH_UP = 1000


def occurrence_after(
    sched: BaseSchedule, policy: Policy, moment: datetime, tz: tzinfo = timezone.utc
) -> datetime | None:
    """The first occurrence strictly after ``moment`` allowed by ``policy``.

    Honours ``anchor`` (intervals), ``start_at`` and ``end_at``; ``tz`` is the
    zone crontab fields are read in (the policy's own zone wins).
    """
    zone = policy.tz or tz
    moment = utc(moment)
    interval = isinstance(sched, schedule) and not isinstance(sched, crontab)
    found: datetime | None
    if policy.start_at is not None and moment < utc(policy.start_at):
        if interval and policy.anchor is None:
            found = utc(policy.start_at)  # an interval starts at start_at itself
            return None if policy.end_at is not None and found > utc(policy.end_at) else found
        moment = utc(policy.start_at) - timedelta(microseconds=1)
    if policy.anchor is not None and interval:
        found = anchored_next(sched, utc(policy.anchor), moment)
    elif isinstance(sched, rrule) and policy.tz is not None:
        found = sched.next_after(moment, policy.tz)  # wall time kept in the entry's zone
        found = None if found is None else utc(found)
    else:
        found = next_after(sched, moment, zone)
    if found is not None and policy.end_at is not None and found > utc(policy.end_at):
        return None
    return found


def anchored_next(sched: schedule, anchor: datetime, after: datetime) -> datetime:
    """The first ``anchor + k * every`` strictly after ``after`` (k may be negative)."""
    every = sched.run_every.total_seconds()
    steps = math.floor((after - anchor).total_seconds() / every) + 1
    found: datetime = anchor + timedelta(seconds=steps * every)
    while found <= after:  # float rounding
        found += timedelta(seconds=every)
    return found


def jitter_offset(key: str, occurrence: datetime, jitter: float | None) -> float:
    """Seconds to delay ``occurrence`` of ``key``: up to ``jitter``, the same every time."""
    if not jitter:
        return 0.0
    digest = hashlib.sha1(f'{key}@{utc(occurrence).isoformat()}'.encode()).digest()
    return jitter * int.from_bytes(digest[:8], 'big') / 2**64


def due_score(key: str, occurrence: datetime | None, policy: Policy) -> float:
    """The score of an entry whose next occurrence is ``occurrence`` (jitter added)."""
    if occurrence is None:
        return NEVER
    return to_score(occurrence) + jitter_offset(key, occurrence, policy.jitter)


@dataclass(frozen=True)
class RunPlan:
    """What to do with an entry that is due: pure result of :func:`plan_run`."""

    sends: tuple[datetime, ...]  # occurrences to send now (their scheduled times)
    last_run_at: datetime  # run state to record
    total_run_count: int
    next_occurrence: datetime | None  # None: finished, no more occurrences
    score: float  # next_occurrence plus jitter, or NEVER
    missed: int  # older than the catch-up window: not sent
    skipped: int  # within the window but not sent, by the missed-run policy


def _due_occurrences(
    sched: BaseSchedule, policy: Policy, first: datetime, now: datetime, tz: tzinfo
) -> list[datetime]:
    """``first`` and the following occurrences up to ``now`` (at most _MAX_CATCH_UP)."""
    found = [first]
    while len(found) < _MAX_CATCH_UP:
        following = occurrence_after(sched, policy, found[-1], tz)
        if following is None or following > now:
            break
        found.append(following)
    return found


def _late_interval(
    sched: BaseSchedule, policy: Policy, sends: list[datetime], now: datetime, key: str
) -> bool:
    """An (unanchored) interval run sent more than half a period after its (jittered) time."""
    if not sends or policy.anchor is not None or not isinstance(sched, schedule):
        return False
    if isinstance(sched, (crontab, solar)):
        return False
    period = sched.run_every.total_seconds()
    due = sends[-1] + timedelta(seconds=jitter_offset(key, sends[-1], policy.jitter))
    return bool((now - due).total_seconds() > period / 2)


def plan_run(
    sched: BaseSchedule,
    policy: Policy,
    first: datetime,
    now: datetime,
    runs: int,
    tz: tzinfo = timezone.utc,
    key: str = '',
) -> RunPlan:
    """Decide what to send for an entry whose occurrence ``first`` is due (``first <= now``).

    The occurrences due from ``first`` up to ``now`` are sorted: those older
    than the catch-up window are *missed*; of the others the policy sends the
    latest (``once``, the default; ``skip`` only within its window, 60 s by
    default) or each (``all``, at most ``missed_limit``), and the rest are
    *skipped*.  ``max_runs`` caps the sends.  The run state records the latest
    due occurrence, so the next one is the first after it; except that a
    ``once`` catch-up (several were due, or an interval run more than half a
    period late) is recorded at ``now``, as Celery does, so the next run is a
    whole period away and two runs are never bunched together.
    """
    now = utc(now)
    due = _due_occurrences(sched, policy, utc(first), now, tz)
    window = policy.catchup_window
    if window is None and policy.missed == 'skip':
        window = SKIP_GRACE
    cutoff = now - timedelta(seconds=window) if window is not None else None
    # Lateness counts from an occurrence's jittered due time, not the occurrence.
    within = [
        o
        for o in due
        if cutoff is None or o + timedelta(seconds=jitter_offset(key, o, policy.jitter)) >= cutoff
    ]
    missed = len(due) - len(within)
    if policy.missed == 'all':
        limit = policy.missed_limit if policy.missed_limit is not None else 100
        sends = within[:limit] if limit else within[-1:]
    else:
        sends = within[-1:]
    if policy.max_runs is not None:
        sends = sends[: max(0, policy.max_runs - runs)]
    skipped = len(within) - len(sends)
    last = due[-1]
    once = policy.missed in (None, 'once')
    catching_up = once and (len(due) > 1 or _late_interval(sched, policy, sends, now, key))
    if catching_up or len(due) == _MAX_CATCH_UP:
        # Celery's rule: a catch-up run counts as run now, so the next one is
        # a whole period later, not moments after (no burst after an outage).
        last = max(last, now)
    total = runs + len(sends)
    finished = policy.max_runs is not None and total >= policy.max_runs
    following = None if finished else occurrence_after(sched, policy, last, tz)
    return RunPlan(
        sends=tuple(sends),
        last_run_at=last,
        total_run_count=total,
        next_occurrence=following,
        score=due_score(key, following, policy),
        missed=missed,
        skipped=skipped,
    )


def first_occurrence(
    sched: BaseSchedule,
    policy: Policy,
    last_run_at: datetime | None,
    score: float,
    now: datetime,
    tz: tzinfo = timezone.utc,
) -> datetime | None:
    """The occurrence an entry found due at ``score`` stands for.

    Score 0 means "due now" (written by hand, or run at once on request); an
    entry with a run state is due at the occurrence after its last run (its
    score may carry jitter); otherwise the score itself.
    """
    if score == NOW:
        return utc(now)
    if last_run_at is not None:
        return occurrence_after(sched, policy, last_run_at, tz)
    return from_score(score)


def advance(
    sched: BaseSchedule,
    scheduled_at: datetime,
    now: datetime,
    tz: tzinfo = timezone.utc,
) -> tuple[datetime, datetime | None]:
    """``(last_run_at, next due)`` once the occurrence at ``scheduled_at`` is sent.

    The default policy's rule (see :func:`plan_run`): missed occurrences are
    sent once and the run is recorded at ``now``; the next due time is the
    first occurrence after the recorded run.
    """
    plan = plan_run(sched, DEFAULT_POLICY, scheduled_at, now, 0, tz)
    return plan.last_run_at, plan.next_occurrence


def due_after_change(
    sched: BaseSchedule,
    last_run_at: datetime | None,
    now: datetime,
    tz: tzinfo = timezone.utc,
    policy: Policy | None = None,
) -> datetime | None:
    """Due time of an entry whose definition was saved (again) at ``now``.

    With no run yet, the first occurrence after ``now``; otherwise the next
    occurrence after the last run, which may be in the past (then it is due).
    """
    policy = policy or DEFAULT_POLICY
    return occurrence_after(sched, policy, now if last_run_at is None else last_run_at, tz)


def score_after_change(
    key: str,
    sched: BaseSchedule,
    enabled: bool,
    last_run_at: datetime | None,
    now: datetime,
    tz: tzinfo,
    policy: Policy,
) -> float:
    """The score an entry is written with when its definition is saved at ``now``.

    The one rule every writer follows (a save, ``redbeat check --fix``, beat
    adopting a hash without a member): -1 when disabled, else the due time of
    :func:`due_after_change` with the entry's jitter.  TypeError for a schedule
    type redbeat cannot compute, OverflowError past the year 9999.
    """
    if not enabled:
        return NEVER
    return due_score(key, due_after_change(sched, last_run_at, now, tz, policy), policy)
