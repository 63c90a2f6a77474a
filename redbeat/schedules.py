"""Schedule types that Celery does not ship: :class:`rrule` (RFC 5545 rules).

``redbeat.schedules.rrule`` keeps the constructor and JSON form of
celery-redbeat 2.x, so existing definitions and user code keep working.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Any

from celery.schedules import BaseSchedule, schedstate
from dateutil import rrule as du

from .validation import check_rule_numbers, check_set_positions

FREQUENCIES = {
    'YEARLY': du.YEARLY,
    'MONTHLY': du.MONTHLY,
    'WEEKLY': du.WEEKLY,
    'DAILY': du.DAILY,
    'HOURLY': du.HOURLY,
    'MINUTELY': du.MINUTELY,
    'SECONDLY': du.SECONDLY,
}

#: Length of one period of the frequencies whose periods are fixed (wall-clock) spans.
_PERIOD = {
    du.WEEKLY: timedelta(weeks=1),
    du.DAILY: timedelta(days=1),
    du.HOURLY: timedelta(hours=1),
    du.MINUTELY: timedelta(minutes=1),
    du.SECONDLY: timedelta(seconds=1),
}
#: A search starts at most this many periods before the moment it looks after
#: (where the zone's UTC offset changed in the last :data:`_STEADY`).
_SEARCH_SLACK = 1000
#: How long a zone's UTC offset must have been unchanged before a moment for a
#: search to start just before it: longer than any change of offset can move a
#: wall-clock time (offsets lie within ±24 hours).
_STEADY = timedelta(days=2)
#: Where the offset is steady, a search started up to this many periods before
#: the moment is used again; further, a new one starts a period before it.
_CLOSE_REACH = 8

#: The fields that narrow or expand a rule's occurrences within a period.
_BY_FIELDS = (
    'bysetpos', 'bymonth', 'bymonthday', 'byyearday', 'byeaster', 'byweekno', 'byweekday',
    'byhour', 'byminute', 'bysecond',
)  # fmt: skip
#: The fields that filter days (the rest pick times within a day).
_DAY_FIELDS = ('bymonth', 'bymonthday', 'byyearday', 'byweekno', 'byweekday', 'byeaster')

#: The rule fields, in the order celery-redbeat 2.x writes them.
RULE_FIELDS = (
    'freq', 'interval', 'wkst', 'count', 'bysetpos', 'bymonth', 'bymonthday',
    'byyearday', 'byeaster', 'byweekno', 'byweekday', 'byhour', 'byminute', 'bysecond',
)  # fmt: skip


_TICK = timedelta(microseconds=1)
_DAY = timedelta(days=1)
#: The longest span counted by arithmetic: shorter than the time between two
#: UTC offset changes of any zone (as ``timing.cron_count`` assumes).
_GRID_SPAN = timedelta(days=14)
#: Where a zone's UTC offset is looked at before a moment (see :func:`_steady`).
_STEADY_PROBES = tuple(_STEADY * k / 4 for k in range(1, 5))


#: next_after answers one rule keeps (a tick asks a few per distinct run state).
_ANSWERS_MAX = 1024


def _steady(zone: tzinfo | None, moment: datetime) -> bool:
    """True if ``zone``'s UTC offset is the same over :data:`_STEADY` before ``moment``.

    A fixed offset always is; a zone is looked at every 12 hours back (no zone
    changes its offset twice within a day).
    """
    if zone is None or isinstance(zone, timezone):
        return True
    offset = moment.astimezone(zone).utcoffset()
    return all((moment - back).astimezone(zone).utcoffset() == offset for back in _STEADY_PROBES)


def _as_utc(dt: datetime) -> datetime:
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=timezone.utc)


def _aware(dt: datetime | None) -> datetime | None:
    if dt is None or dt.tzinfo is not None:
        return dt
    return dt.replace(tzinfo=timezone.utc)


class rrule(BaseSchedule):  # type: ignore[misc]
    """A schedule that fires on the occurrences of a python-dateutil rule.

    Naive ``dtstart``/``until`` are taken as UTC.  Without ``dtstart`` the rule
    starts at the time it is created (as python-dateutil does), and that start
    is what gets stored, so the rule does not drift when it is loaded again.
    """

    def __init__(
        self,
        freq: int | str,
        dtstart: datetime | None = None,
        interval: int = 1,
        wkst: Any = None,
        count: int | None = None,
        until: datetime | None = None,
        bysetpos: Any = None,
        bymonth: Any = None,
        bymonthday: Any = None,
        byyearday: Any = None,
        byeaster: Any = None,
        byweekno: Any = None,
        byweekday: Any = None,
        byhour: Any = None,
        byminute: Any = None,
        bysecond: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(freq, str):
            if freq.upper() not in FREQUENCIES:
                raise ValueError(f'freq: {freq!r} is not one of {", ".join(FREQUENCIES)}')
            freq = FREQUENCIES[freq.upper()]
        if not isinstance(freq, int) or not du.YEARLY <= freq <= du.SECONDLY:
            raise ValueError(f'freq: {freq!r} is not a dateutil frequency (0-6)')
        check_rule_numbers(interval, count)  # interval 0 would make every search endless
        check_set_positions(freq, {
            'bysetpos': bysetpos, 'bymonth': bymonth, 'bymonthday': bymonthday,
            'byyearday': byyearday, 'byeaster': byeaster, 'byweekno': byweekno,
            'byweekday': byweekday, 'byhour': byhour, 'byminute': byminute, 'bysecond': bysecond,
        })  # fmt: skip
        for name, moment in (('dtstart', dtstart), ('until', until)):
            if moment is not None and not isinstance(moment, datetime):
                raise TypeError(f'{name} must be a datetime, not {moment!r}')
        if dtstart is None:
            dtstart = datetime.now(timezone.utc).replace(microsecond=0)
        self.freq = freq
        self.dtstart = _aware(dtstart)
        self.interval = interval
        self.wkst = wkst
        self.count = count
        self.until = _aware(until)
        self.bysetpos = bysetpos
        self.bymonth = bymonth
        self.bymonthday = bymonthday
        self.byyearday = byyearday
        self.byeaster = byeaster
        self.byweekno = byweekno
        self.byweekday = byweekday
        self.byhour = byhour
        self.byminute = byminute
        self.bysecond = bysecond
        self._in_zone: dict[tzinfo, du.rrule] = {}
        self._near: dict[tzinfo | None, tuple[datetime, du.rrule]] = {}
        self._close: dict[tzinfo | None, tuple[datetime, du.rrule]] = {}
        self._dayless_from: date | None = None
        #: Answers of next_after: entries alike share one rule (the planner's
        #: cache) and ask it the same question in a tick.  Emptied when full.
        self._answers: dict[tuple[datetime, tzinfo | None], datetime | None] = {}
        self.rrule = du.rrule(
            freq,  # type: ignore[arg-type]
            dtstart=self.dtstart,
            interval=interval,
            wkst=wkst,
            count=count,
            until=self.until,
            bysetpos=bysetpos,
            bymonth=bymonth,
            bymonthday=bymonthday,
            byyearday=byyearday,
            byeaster=byeaster,
            byweekno=byweekno,
            byweekday=byweekday,
            byhour=byhour,
            byminute=byminute,
            bysecond=bysecond,
        )

    def next_after(self, moment: datetime, tz: tzinfo | None = None) -> datetime | None:
        """The first occurrence strictly after ``moment`` (aware), or None.

        With ``tz``, the rule runs on wall-clock time in that zone: ``dtstart``
        is read there, so 09:00 stays 09:00 across daylight-saving changes
        (the stored ``dtstart`` only keeps a fixed UTC offset).
        """
        key = (moment, tz)
        try:
            return self._answers[key]
        except KeyError:
            pass
        found = self._search(moment, tz)
        if len(self._answers) >= _ANSWERS_MAX:
            self._answers.clear()
        self._answers[key] = found
        return found

    def _search(self, moment: datetime, tz: tzinfo | None) -> datetime | None:
        rule = self.rrule if tz is None else self._zoned(tz)
        local = self._local(moment, tz)
        if self._no_day_from(local.date()):
            return None
        near = self._near_start(rule, tz, local)
        found: datetime | None = None if near is None else near.after(local)
        return found

    def _no_day_from(self, day: date) -> bool:
        """No day from ``day`` on passes the rule's day filters (``BYMONTH=2;BYMONTHDAY=30``).

        python-dateutil would find that out walking every day to the year
        9999 (seconds for an hourly rule); a yearly rule with the same day
        filters walks years instead.  Rules of months and years already do.
        """
        if self.freq <= du.MONTHLY:
            return False
        given = {name: getattr(self, name) for name in _DAY_FIELDS}
        given = {name: value for name, value in given.items() if value is not None}
        if not given:
            return False
        if self._dayless_from is not None and day >= self._dayless_from:
            return True
        if 'byweekday' in given:  # below monthly, dateutil ignores a weekday's n (+1MO)
            days = given['byweekday']
            days = days if isinstance(days, (list, tuple, set, frozenset)) else [days]
            given['byweekday'] = [getattr(d, 'weekday', d) for d in days]
        first = datetime(day.year, day.month, 1)  # day 1: in every month BYMONTH names
        try:
            probe = du.rrule(du.YEARLY, dtstart=first, wkst=self.wkst, **given)
            found = probe.after(datetime(day.year, day.month, day.day), inc=True)
        except (ValueError, TypeError, OverflowError):
            return False  # the rule itself will say what is wrong
        if found is None:
            self._dayless_from = day
        return found is None

    def _near_start(self, rule: du.rrule, tz: tzinfo | None, moment: datetime) -> du.rrule | None:
        """``rule``, started near before ``moment`` (None: its ``count`` is used up
        before then): what it yields after ``moment`` is what ``rule`` yields.

        python-dateutil walks every occurrence from ``dtstart``: a secondly
        rule started a year ago takes 31 million steps to find the next one.
        Moving the start forward by whole multiples of ``interval`` periods
        yields the same occurrences after ``moment`` (the by-fields dateutil
        takes from the start, such as the minute of an hourly rule, stay the
        same) and bounds the walk.  A ``count`` is lowered by the periods
        skipped, each of which holds exactly one occurrence when the rule has
        no by-field; with by-fields it stays (its walk is bounded by the
        count limit).  Not for monthly and yearly rules (uneven periods, and
        at most 12 steps a year).

        dateutil walks wall-clock times.  In ``tz`` (the rule and ``moment``
        in one tzinfo) it compares wall times, and the walk may start a period
        before ``moment``.  In ``dtstart``'s own zone it answers the first
        wall time whose instant is after ``moment``: where that zone's UTC
        offset is steady over :data:`_STEADY` before ``moment`` (always, for a
        fixed offset, as every rule read from Redis has) every earlier wall
        time is an earlier instant, and the walk starts a period before
        ``moment``; otherwise an earlier wall time can be a later instant (one
        a spring-forward skipped), and the walk starts :data:`_SEARCH_SLACK`
        periods back.
        """
        period = _PERIOD.get(self.freq)
        count = self.count
        counted = count is not None
        if period is None or self.dtstart is None:
            return rule
        if counted and any(getattr(self, name) is not None for name in _BY_FIELDS):
            return rule
        zone = self.dtstart.tzinfo if tz is None else tz
        wall = moment.astimezone(zone).replace(tzinfo=None)  # dateutil's wall clock
        step = period * self.interval
        # Zoned, dateutil compares wall times (one tzinfo): any start before will do.
        steady = tz is not None or _steady(zone, moment)
        cache, slack, reach = (
            (self._close, 1, _CLOSE_REACH)
            if steady
            else (self._near, _SEARCH_SLACK, 2 * _SEARCH_SLACK)
        )
        cached = cache.get(tz)
        if cached is not None and timedelta(0) <= wall - cached[0] <= step * reach:
            return cached[1]  # started before the moment, and close enough
        start = self.dtstart if tz is None else self.dtstart.astimezone(tz)
        steps = (wall - start.replace(tzinfo=None)) // step - slack
        if steps <= 0:
            return rule
        if count is not None and steps >= count:
            return None  # every occurrence is before the moment
        try:
            begin = start + steps * step  # wall-clock arithmetic, as dateutil's own
            if count is not None:
                near = rule.replace(dtstart=begin, count=count - steps)
            else:
                near = rule.replace(dtstart=begin)
        except OverflowError:
            return rule
        cache[tz] = (begin.replace(tzinfo=None), near)
        return near

    def count_between(self, lo: datetime, hi: datetime, most: int, tz: tzinfo | None = None) -> int:
        """How many occurrences lie in ``[lo, hi]`` (aware), counted up to ``most``.

        The occurrences :meth:`next_after` finds one after the other from
        ``lo``, in one walk of dateutil's iterator, started as
        :meth:`next_after` starts it, with the same guards: the walk is as
        long as the calls it replaces would make together, or shorter.
        """
        if hi < lo or most <= 0:
            return 0
        counted = self._count_on_grid(lo, hi, tz)
        if counted is not None:
            return min(counted, most)
        rule = self.rrule if tz is None else self._zoned(tz)
        before = self._local(lo - _TICK, tz)
        if self._no_day_from(before.date()):
            return 0
        near = self._near_start(rule, tz, before)
        if near is None:
            return 0
        found = 0
        for moment in near:
            # dateutil's order is the wall clock's; the search answers the first
            # one after the last found (as an instant: a wall time the clocks
            # skipped reads back an hour later), compared as next_after does.
            if not moment > before:
                continue
            if moment > hi:
                break
            found += 1
            if found >= most:
                break
            before = self._local(moment.astimezone(timezone.utc), tz)
        return found

    def _count_on_grid(self, lo: datetime, hi: datetime, tz: tzinfo | None) -> int | None:
        """:meth:`count_between` by arithmetic for a rule without by-fields: its wall
        times are ``dtstart + k * interval`` periods, and where the zone keeps one
        UTC offset (over the span and a day around it) walls and instants agree.
        None where that is not so (then the rule is walked)."""
        period = _PERIOD.get(self.freq)
        if period is None or self.dtstart is None:
            return None
        if any(getattr(self, name) is not None for name in _BY_FIELDS):
            return None
        lo, hi = _as_utc(lo), _as_utc(hi)
        if hi - lo > _GRID_SPAN or (self.until is not None and self.until < hi + _DAY):
            return None
        zone = self.dtstart.tzinfo if tz is None else tz
        if not isinstance(zone, timezone):
            offset = lo.astimezone(zone).utcoffset()
            if any(m.astimezone(zone).utcoffset() != offset for m in (lo - _DAY, hi, hi + _DAY)):
                return None
        # dateutil drops dtstart's microseconds, and steps wall-clock times.
        start = self.dtstart.astimezone(zone).replace(tzinfo=None, microsecond=0)
        step = period * self.interval
        first = max(0, -((start - lo.astimezone(zone).replace(tzinfo=None)) // step))
        last = (hi.astimezone(zone).replace(tzinfo=None) - start) // step
        if self.count is not None:
            last = min(last, self.count - 1)
        return max(0, last - first + 1)

    @staticmethod
    def _local(moment: datetime, tz: tzinfo | None) -> datetime:
        """``moment`` as :meth:`next_after` hands it to dateutil."""
        return _as_utc(moment).astimezone(tz) if tz else _as_utc(moment)

    def _zoned(self, tz: tzinfo) -> du.rrule:
        cached = self._in_zone.get(tz)
        if cached is None:
            start = self.dtstart.astimezone(tz) if self.dtstart else None
            until = self.until.astimezone(tz) if self.until else None
            cached = self.rrule.replace(dtstart=start, until=until)
            self._in_zone[tz] = cached
        return cached

    # Celery's BaseSchedule interface, for code that asks the schedule itself.
    def remaining_estimate(self, last_run_at: datetime) -> timedelta | None:
        following = self.next_after(last_run_at)
        if following is None:
            return None
        now: datetime = self.now()
        return following - now.astimezone(timezone.utc)

    def is_due(self, last_run_at: datetime) -> schedstate:
        remaining = self.remaining_estimate(last_run_at)
        if remaining is None:
            return schedstate(False, None)
        if remaining.total_seconds() > 0:
            return schedstate(False, remaining.total_seconds())
        upcoming = self.remaining_estimate(self.now())
        return schedstate(True, None if upcoming is None else max(upcoming.total_seconds(), 0))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, rrule):
            return NotImplemented
        return self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(str(self.rrule))

    def _identity(self) -> tuple[Any, ...]:
        return (str(self.rrule), self.dtstart, self.until)

    def __repr__(self) -> str:
        return f'<rrule: {self.rrule!s}>'

    def __reduce__(self) -> tuple[Any, ...]:
        fields = {name: getattr(self, name) for name in RULE_FIELDS}
        return (_rebuild_rrule, (fields, self.dtstart, self.until))


def _rebuild_rrule(fields: dict[str, Any], dtstart: datetime, until: datetime | None) -> rrule:
    return rrule(dtstart=dtstart, until=until, **fields)
