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
from bisect import bisect_left, bisect_right
from collections.abc import Callable
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
    rounded = utc(local)
    # Rounded down across a fall-back shorter than the resolution (Lord Howe's
    # 30 minutes), the wall time can be the last run itself: never repeat it.
    return rounded if rounded > last else due


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


#: Answers of :func:`cron_next` by (schedule identity, instant, zone identity):
#: entries alike share one crontab object (the planner's) and, run on the same
#: grid, ask the same questions in a tick. The objects are kept with the answer,
#: so their ids cannot be reused by others while cached (and some zones, such
#: as dateutil's, cannot be hashed); emptied when full.
_CRON_ANSWERS: dict[tuple[int, datetime, int], tuple[crontab, tzinfo, datetime | None]] = {}
_CRON_ANSWERS_MAX = 4096


def cron_next(c: crontab, after: datetime, tz: tzinfo = timezone.utc) -> datetime | None:
    """The first crontab match strictly after ``after``, wall clock read in ``tz``.

    Celery's rule: a day matches when month, day of month *and* day of week do.
    """
    after = utc(after)
    key = (id(c), after, id(tz))
    known = _CRON_ANSWERS.get(key)
    if known is not None and known[0] is c and known[1] is tz:
        return known[2]
    found = _cron_search(c, after, tz)
    if len(_CRON_ANSWERS) >= _CRON_ANSWERS_MAX:
        _CRON_ANSWERS.clear()
    _CRON_ANSWERS[key] = (c, tz, found)
    return found


def _cron_search(c: crontab, after: datetime, tz: tzinfo) -> datetime | None:
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


# --- policies: bounds, anchors, missed runs, jitter --------------------------------


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


# --- catch-up: the due occurrences of an entry, without enumerating them ------------

#: The most occurrences a catch-up looks at one by one: the older ones of a
#: relative interval of a day or more (its next time depends on the previous
#: one, in the local calendar), and those within a jitter of the catch-up
#: window's edge.
_MAX_CATCH_UP = 1000
#: The most due crontab, solar or rrule occurrences counted one by one for the
#: ``missed`` and ``skipped`` counters of one run (beyond, they count this many):
#: their latest due occurrence is found by a search back from now, but counting
#: every minute of a year-long outage would cost as much as sending it.
COUNT_LIMIT = 100
#: Steps of the search for the latest due occurrence (doubling back from now,
#: then halving): 2**64 microseconds span any datetime.
_SEARCH_STEPS = 256
_TICK = timedelta(microseconds=1)
#: The first occurrence strictly after a moment (None: no more).
_After = Callable[[datetime], 'datetime | None']
#: How many occurrences lie in ``[lo, hi]``, exact or at least the third argument
#: (None: cannot tell without walking).
_Counter = Callable[[datetime, datetime, int], 'int | None']


class _Due:
    """The occurrences of one entry due from ``first`` to ``last`` (``first <= last <= now``).

    Subclasses know how to count them and list them from a point on without
    walking from ``first``: :class:`_Grid` (an interval: arithmetic),
    :class:`_Walk` (a schedule whose occurrences are a fixed set: search) and
    :class:`_Chain` (a relative interval of a day or more: walked, capped).
    """

    first: datetime
    last: datetime

    def count(self, lo: datetime | None, hi: datetime | None, past: int = 0) -> int:
        """How many due occurrences ``o`` have ``lo <= o < hi`` (None: unbounded).

        Exact, or at least ``COUNT_LIMIT + past`` when that many are counted one by one.
        """
        raise NotImplementedError

    def from_(self, lo: datetime | None, hi: datetime | None, limit: int) -> list[datetime]:
        """The first ``limit`` due occurrences ``o`` with ``lo <= o < hi``, oldest first."""
        raise NotImplementedError

    @property
    def capped(self) -> bool:
        """True if ``last`` may not be the latest due occurrence (a capped walk)."""
        return False


class _Grid(_Due):
    """``heads``, then ``base + k * step`` for ``k < n``: an interval's due occurrences."""

    def __init__(self, heads: list[datetime], base: datetime, step: timedelta, n: int) -> None:
        self.heads, self.base, self.step, self.n = heads, base, step, n
        self.first = heads[0]
        self.last = base + (n - 1) * step if n else heads[-1]

    def _index(self, moment: datetime) -> int:
        """The first grid index ``k`` whose occurrence is ``>= moment`` (0..n)."""
        k = -((self.base - moment) // self.step)  # ceil((moment - base) / step)
        return min(max(k, 0), self.n)

    def _span(self, lo: datetime | None, hi: datetime | None) -> tuple[list[datetime], int, int]:
        heads = [o for o in self.heads if (lo is None or o >= lo) and (hi is None or o < hi)]
        start = 0 if lo is None else self._index(lo)
        stop = self.n if hi is None else self._index(hi)
        return heads, start, max(start, stop)

    def count(self, lo: datetime | None, hi: datetime | None, past: int = 0) -> int:
        heads, start, stop = self._span(lo, hi)
        return len(heads) + stop - start

    def from_(self, lo: datetime | None, hi: datetime | None, limit: int) -> list[datetime]:
        heads, start, stop = self._span(lo, hi)
        stop = min(stop, start + max(0, limit - len(heads)))
        return [*heads, *(self.base + k * self.step for k in range(start, stop))][:limit]


class _Walk(_Due):
    """A schedule whose occurrences form a fixed set (crontab, solar, rrule, anchored):
    the first after any moment is the same whichever occurrence one walks from.

    ``counter``, if given, counts the occurrences in ``[lo, hi]`` without walking
    (None when it cannot); otherwise they are walked, at most COUNT_LIMIT.
    """

    def __init__(
        self, after: _After, first: datetime, now: datetime, counter: _Counter | None = None
    ) -> None:
        self.after, self.first, self.counter = after, first, counter
        self.last = self._latest(now)

    def _latest(self, now: datetime) -> datetime:
        """The latest occurrence ``<= now``: back from now by doubling gaps, then halving."""
        known = self.first
        following = self.after(known)
        if following is None or following > now:
            return known
        # The first gap is one period (as the first two occurrences tell): for a
        # regular schedule, the probe one period back from now finds the latest.
        gap = max(following - known, timedelta(seconds=1))
        floor = now  # no occurrence in (floor, now]
        for _ in range(_SEARCH_STEPS):
            probe = now - gap
            if probe <= known:
                break
            found = self.after(probe)
            if found is not None and found <= now:
                known = found
                break
            floor, gap = probe, gap * 2
        for _ in range(_SEARCH_STEPS):
            following = self.after(known)
            if following is None or following > now:
                return known
            known = following
            if floor > known:
                probe = known + (floor - known) / 2
                found = self.after(probe)
                if found is not None and found <= now:
                    known = found
                else:
                    floor = probe
        return known  # pragma: no cover - 256 steps bisect any span of datetimes

    def _start(self, lo: datetime | None) -> datetime | None:
        if lo is None or lo <= self.first:
            return self.first
        return self.after(lo - _TICK)

    def count(self, lo: datetime | None, hi: datetime | None, past: int = 0) -> int:
        if self.counter is not None:
            stop = self.last if hi is None else min(hi - _TICK, self.last)
            # ``first`` is due even off the schedule's grid (score 0: "due now"),
            # so it is counted apart and the counter asked only about what follows.
            with_first = (lo is None or lo <= self.first) and self.first <= stop
            start = self.first + _TICK if with_first or lo is None else max(lo, self.first)
            counted = self.counter(start, stop, COUNT_LIMIT + past)
            if counted is not None:
                return counted + with_first
        return len(self.from_(lo, hi, COUNT_LIMIT + past))

    def from_(self, lo: datetime | None, hi: datetime | None, limit: int) -> list[datetime]:
        found: list[datetime] = []
        moment = self._start(lo)
        while moment is not None and moment <= self.last and len(found) < limit:
            if hi is not None and moment >= hi:
                break
            found.append(moment)
            moment = self.after(moment)
        return found


#: The longest span crontab matches are counted over by arithmetic (per day); it is
#: also shorter than the time between two UTC offset changes of any zone.
_CRON_COUNT_DAYS = 14


def cron_count(c: crontab, lo: datetime, hi: datetime, tz: tzinfo) -> int | None:
    """How many matches of ``c`` fall in ``[lo, hi]``, by arithmetic; None if the span
    is longer than two weeks or a UTC offset changes near it (then walk)."""
    if hi < lo:
        return 0
    if hi - lo > timedelta(days=_CRON_COUNT_DAYS):
        return None
    offset = lo.astimezone(tz).utcoffset()
    margin = timedelta(days=1)  # a wall time a change made ambiguous or skipped
    for moment in (lo - margin, hi, hi + margin):
        if moment.astimezone(tz).utcoffset() != offset:
            return None
    assert offset is not None
    # With one offset throughout, walls and instants correspond one to one.
    start = (lo + offset).replace(tzinfo=None)
    if start.second or start.microsecond:
        start = start.replace(second=0, microsecond=0) + timedelta(minutes=1)
    end = (hi + offset).replace(tzinfo=None)
    hours, minutes = sorted(c.hour), sorted(c.minute)
    total, day = 0, start.date()
    while day <= end.date():
        if (
            day.month in c.month_of_year
            and day.day in c.day_of_month
            and day.isoweekday() % 7 in c.day_of_week
        ):
            first = (start.hour, start.minute) if day == start.date() else (0, 0)
            last = (end.hour, end.minute) if day == end.date() else (23, 59)
            total += _matches_between(hours, minutes, first, last)
        day += timedelta(days=1)
    return total


def _matches_between(
    hours: list[int], minutes: list[int], first: tuple[int, int], last: tuple[int, int]
) -> int:
    """How many (hour, minute) of sorted ``hours`` x ``minutes`` lie in ``[first, last]``."""
    total = 0
    for hour in hours:
        if not first[0] <= hour <= last[0]:
            continue
        low = bisect_left(minutes, first[1]) if hour == first[0] else 0
        high = bisect_right(minutes, last[1]) if hour == last[0] else len(minutes)
        total += max(0, high - low)
    return total


class _Chain(_Due):
    """A relative interval whose times are rounded to local days or hours, each from
    the one before: walked from ``first``, at most _MAX_CATCH_UP.

    Past that, the latest is taken from a walk started two intervals before now
    (rounded as the chain would be), so a catch-up still sends a recent time.
    """

    def __init__(self, after: _After, first: datetime, now: datetime, every: timedelta) -> None:
        self.first, self.found = first, [first]
        while len(self.found) < _MAX_CATCH_UP:
            following = after(self.found[-1])
            if following is None or following > now:
                break
            self.found.append(following)
        if self.capped and every > timedelta(0):
            moment = after(now - 2 * every)
            for _ in range(4):  # two intervals back: three steps reach now
                if moment is None or moment > now or moment <= self.found[-1]:
                    break
                self.found[-1] = moment
                moment = after(moment)
        self.last = self.found[-1]

    @property
    def capped(self) -> bool:
        return len(self.found) == _MAX_CATCH_UP

    def count(self, lo: datetime | None, hi: datetime | None, past: int = 0) -> int:
        return len(self.from_(lo, hi, len(self.found)))

    def from_(self, lo: datetime | None, hi: datetime | None, limit: int) -> list[datetime]:
        within = [o for o in self.found if (lo is None or o >= lo) and (hi is None or o < hi)]
        return within[:limit]


def _whole_hour_shifts(tz: tzinfo, first: datetime, now: datetime) -> bool:
    """True if local hours stay on one UTC grid from ``first`` to ``now``: a fixed
    zone, or a span short enough for one offset change (two weeks), of whole hours.

    (Lord Howe Island's 30-minute daylight saving moves them.)
    """
    if isinstance(tz, timezone):
        return True
    if now - first > timedelta(days=_CRON_COUNT_DAYS):
        return False
    before, after = first.astimezone(tz).utcoffset(), now.astimezone(tz).utcoffset()
    return before is not None and after is not None and not (after - before) % _HOUR


_HOUR = timedelta(hours=1)


def _due_occurrences(
    sched: BaseSchedule, policy: Policy, first: datetime, now: datetime, tz: tzinfo
) -> _Due:
    """The occurrences due from ``first`` (itself due) up to ``now``, not enumerated."""

    def after(moment: datetime) -> datetime | None:
        return occurrence_after(sched, policy, moment, tz)

    if isinstance(sched, crontab):
        zone = policy.tz or tz

        def counter(lo: datetime, hi: datetime, most: int) -> int | None:
            return cron_count(sched, lo, hi, zone)

        return _Walk(after, first, now, counter)
    if isinstance(sched, rrule):
        start_at = None if policy.start_at is None else utc(policy.start_at)
        end_at = None if policy.end_at is None else utc(policy.end_at)

        def rule_counter(lo: datetime, hi: datetime, most: int) -> int | None:
            # One walk of the rule instead of a search per occurrence; the
            # policy's bounds as occurrence_after applies them.
            lo = lo if start_at is None else max(lo, start_at)
            hi = hi if end_at is None else min(hi, end_at)
            return sched.count_between(lo, hi, most, policy.tz)

        return _Walk(after, first, now, rule_counter)
    if not isinstance(sched, schedule) or isinstance(sched, solar):
        return _Walk(after, first, now)
    if policy.anchor is not None:
        anchor, step = utc(policy.anchor), timedelta(seconds=sched.run_every.total_seconds())

        def grid_counter(lo: datetime, hi: datetime, most: int) -> int | None:
            # Anchored times are anchor + k * every: count the k in [lo, hi].
            if not step:
                return None
            if hi < lo:
                return 0
            below: int = (hi - anchor) // step
            return max(0, below + (anchor - lo) // step + 1)

        return _Walk(after, first, now, grid_counter)
    step = sched.run_every
    heads = [first]
    if sched.relative:
        seconds = step.total_seconds()
        resolution = 3600 if seconds >= 3600 else 60 if seconds >= 60 else 1
        step = timedelta(seconds=seconds // resolution * resolution)
        if seconds >= 86400 or not step:
            return _Chain(after, first, now, step)
        if resolution == 3600 and not _whole_hour_shifts(policy.tz or tz, first, now):
            return _Chain(after, first, now, step)
        # Rounded down to the second, minute or hour: from the third occurrence on
        # (the second may be ``start_at`` itself), each is on that grid and is the
        # previous plus the interval rounded down, since UTC offsets differ by whole
        # minutes (and, checked above, by whole hours for an hour or more).
        second = after(first)
        if second is None or second > now:
            return _Grid(heads, first, step, 0)
        heads.append(second)
    elif not step:
        return _Chain(after, first, now, step)
    base = after(heads[-1])
    if base is None or base > now:
        return _Grid(heads, heads[-1], step, 0)
    hi = now if policy.end_at is None else min(now, utc(policy.end_at))
    return _Grid(heads, base, step, (hi - base) // step + 1)


def _free_interval(sched: BaseSchedule, policy: Policy) -> bool:
    """An unanchored interval: its next run is "last run + interval", wherever that falls."""
    if policy.anchor is not None or not isinstance(sched, schedule):
        return False
    return not isinstance(sched, (crontab, solar))


def _late_interval(
    sched: BaseSchedule, policy: Policy, sends: list[datetime], now: datetime, key: str
) -> bool:
    """An (unanchored) interval run sent more than half a period after its (jittered) time."""
    if not sends or not _free_interval(sched, policy):
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
    send_at: datetime | None = None,
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

    ``send_at`` is when the messages will leave (default ``now``; later in a
    long tick): an interval's lateness counts to it, and its catch-up run is
    recorded at it, so its next run is at least half a period after the send.

    The cost does not grow with the length of an outage: the occurrences are
    counted by arithmetic (intervals) or up to :data:`COUNT_LIMIT` each
    (crontab, solar, rrule), never listed (see :func:`_due_occurrences`).
    """
    now = utc(now)
    if type(sched) is schedule and not sched.relative and _plain(policy):
        return _interval_run(sched.run_every, policy.max_runs, utc(first), now, runs, send_at)
    due = _due_occurrences(sched, policy, utc(first), now, tz)
    window = policy.catchup_window
    if window is None and policy.missed == 'skip':
        window = SKIP_GRACE
    # Lateness counts from an occurrence's jittered due time, not the occurrence:
    # one at or after the cutoff is within the window, one a whole jitter before
    # it is not, and those between are looked at one by one.
    fuzzy: list[datetime] = []
    missed = 0
    cutoff = None if window is None else now - timedelta(seconds=window)
    if cutoff is not None:
        edge = cutoff - timedelta(seconds=policy.jitter or 0)
        missed = due.count(None, edge)
        near = due.from_(edge, cutoff, _MAX_CATCH_UP)
        if len(near) == _MAX_CATCH_UP:  # a jitter of over a thousand periods
            missed += due.count(near[-1] + _TICK, cutoff)
        fuzzy = [
            o for o in near if o + timedelta(seconds=jitter_offset(key, o, policy.jitter)) >= cutoff
        ]
        missed += len(near) - len(fuzzy)
    limit = policy.missed_limit if policy.missed_limit is not None else 100
    # Due at or after the cutoff: all within (counted past what 'all' sends).
    recent = due.count(cutoff, None, limit if policy.missed == 'all' else 0)
    latest = [due.last] if recent else fuzzy[-1:]
    if policy.missed == 'all':
        oldest = fuzzy[:limit]
        sends = [*oldest, *due.from_(cutoff, None, limit - len(oldest))] if limit else latest
    else:
        sends = latest
    if policy.max_runs is not None:
        sends = sends[: max(0, policy.max_runs - runs)]
    skipped = len(fuzzy) + recent - len(sends)
    last = due.last
    once = policy.missed in (None, 'once')
    # An interval's next run counts from when this one leaves; a crontab's (or an
    # anchored interval's) occurrences are fixed, and the next is the first after now.
    sent = max(now, utc(send_at)) if send_at is not None and _free_interval(sched, policy) else now
    catching_up = once and (due.last > due.first or _late_interval(sched, policy, sends, sent, key))
    if catching_up or due.capped:
        # Celery's rule: a catch-up run counts as run now, so the next one is
        # a whole period later, not moments after (no burst after an outage).
        last = max(last, sent)
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


def _plain(policy: Policy) -> bool:
    """A policy that leaves an interval's runs as Celery makes them: no bounds, anchor,
    window or jitter, and one run for the missed ones (``max_runs`` may be set)."""
    return (
        policy.missed in (None, 'once')
        and not policy.jitter
        and policy.catchup_window is None
        and policy.anchor is None
        and policy.start_at is None
        and policy.end_at is None
    )


def _interval_run(
    step: timedelta,
    max_runs: int | None,
    first: datetime,
    now: datetime,
    runs: int,
    send_at: datetime | None,
) -> RunPlan:
    """:func:`plan_run` of an unanchored interval (``first + k * step``) under a
    :func:`_plain` policy, by arithmetic: what the due occurrences and the policy
    decide there, without building them (most entries are such; a table of
    hypothesis cases holds it to the general path)."""
    following_first = first + step
    if following_first > now:
        latest, due = first, 1
    else:
        more = (now - following_first) // step  # due after the second one
        latest, due = following_first + more * step, 2 + more
    sends = [latest]
    if max_runs is not None:
        sends = sends[: max(0, max_runs - runs)]
    sent = now if send_at is None else max(now, utc(send_at))
    late = bool(sends) and (sent - latest).total_seconds() > step.total_seconds() / 2
    last = max(latest, sent) if latest > first or late else latest
    total = runs + len(sends)
    following = None if max_runs is not None and total >= max_runs else last + step
    return RunPlan(
        sends=tuple(sends),
        last_run_at=last,
        total_run_count=total,
        next_occurrence=following,
        score=NEVER if following is None else utc(following).timestamp() + 0.0,
        missed=0,
        skipped=due - len(sends),
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
