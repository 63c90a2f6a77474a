"""Schedule types that Celery does not ship: :class:`rrule` (RFC 5545 rules).

``redbeat.schedules.rrule`` keeps the constructor and JSON form of
celery-redbeat 2.x, so existing definitions and user code keep working.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

from celery.schedules import BaseSchedule, schedstate
from dateutil import rrule as du

FREQUENCIES = {
    'YEARLY': du.YEARLY,
    'MONTHLY': du.MONTHLY,
    'WEEKLY': du.WEEKLY,
    'DAILY': du.DAILY,
    'HOURLY': du.HOURLY,
    'MINUTELY': du.MINUTELY,
    'SECONDLY': du.SECONDLY,
}

#: The rule fields, in the order celery-redbeat 2.x writes them.
RULE_FIELDS = (
    'freq', 'interval', 'wkst', 'count', 'bysetpos', 'bymonth', 'bymonthday',
    'byyearday', 'byeaster', 'byweekno', 'byweekday', 'byhour', 'byminute', 'bysecond',
)  # fmt: skip


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
        rule = self.rrule if tz is None else self._zoned(tz)
        found: datetime | None = rule.after(
            _as_utc(moment).astimezone(tz) if tz else _as_utc(moment)
        )
        return found

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
