"""Schedules and times in human words, and durations read from them.  Pure: no I/O, no clock.

The CLI shows ``every 5 min`` or ``at 03:00 Mon`` rather than a repr, and
``in 4 min`` next to an absolute UTC time; ``now`` is always a parameter so
the wording is tested with fixed datetimes.  :func:`parse_duration` is the
inverse of the interval wording (``30s``, ``5m``, ``1h30m``, ``1d``).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from celery.schedules import crontab, schedule, solar

from .schedules import rrule

#: Units, largest first: (seconds, short name used in words and in durations).
_UNITS = ((86400, 'd'), (3600, 'h'), (60, 'min'), (1, 's'))
_DURATION_UNITS = {'d': 86400, 'h': 3600, 'm': 60, 'min': 60, 's': 1}
_DURATION = re.compile(r'(\d+(?:\.\d+)?)\s*(d|h|min|m|s)', re.IGNORECASE)
_DAY_NAMES = ('Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat')


def parse_duration(text: str) -> float:
    """Seconds in ``30s``, ``5m``, ``1h30m``, ``1d`` or a bare number of seconds.

    Raises ValueError with the accepted forms when ``text`` is none of them.
    """
    cleaned = text.strip().lower()
    try:
        seconds = float(cleaned)
    except ValueError:
        seconds = _sum_units(cleaned)
    if not seconds > 0:
        raise ValueError(f'{text!r}: the interval must be more than 0 seconds')
    return seconds


def _sum_units(text: str) -> float:
    parts = _DURATION.findall(text)
    if not parts or _DURATION.sub('', text).strip():
        raise ValueError(f'{text!r} is not a duration; use e.g. 30s, 5m, 1h30m or 1d')
    return sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts)


def duration(seconds: float) -> str:
    """``1 h 30 min``, ``45 s``, ``1.5 s``: whole units, largest first."""
    if seconds != int(seconds):
        return f'{seconds:g} s'
    rest = int(seconds)
    words = []
    for size, unit in _UNITS:
        if rest >= size:
            words.append(f'{rest // size} {unit}')
            rest %= size
    return ' '.join(words) or '0 s'


def describe(sched: Any) -> str:
    """A schedule in a few words (``every 5 min``, ``at 03:00 Mon``, ``cron 0 3 1 * *``)."""
    if isinstance(sched, crontab):
        return describe_cron(cron_fields(sched))
    if isinstance(sched, rrule):
        return describe_rrule(sched)
    if isinstance(sched, solar):
        return f'solar {sched.event} at {sched.lat:g}, {sched.lon:g}'
    if isinstance(sched, schedule):
        return 'every ' + duration(sched.run_every.total_seconds())
    return str(sched)


def cron_fields(sched: crontab) -> tuple[str, str, str, str, str]:
    """The five fields as written: minute, hour, day of month, month, day of week."""
    return (
        str(sched._orig_minute),
        str(sched._orig_hour),
        str(sched._orig_day_of_month),
        str(sched._orig_month_of_year),
        str(sched._orig_day_of_week),
    )


def describe_cron(fields: tuple[str, str, str, str, str]) -> str:
    """Words for the common crontab shapes; the crontab text for every other one."""
    minute, hour, day, month, weekday = fields
    text = 'cron ' + ' '.join(fields)
    if day != '*' or month != '*':
        return text
    days = _day_names(weekday)
    if days is None:
        return text
    step = re.fullmatch(r'\*/(\d+)', minute)
    if minute == '*' and hour == '*':
        return 'every min' + days
    if step and hour == '*':
        return f'every {step.group(1)} min' + days
    if minute.isdigit() and hour == '*':
        return f'hourly at :{int(minute):02d}' + days
    if minute.isdigit() and re.fullmatch(r'\d+(,\d+)*', hour):
        times = ', '.join(f'{int(h):02d}:{int(minute):02d}' for h in hour.split(','))
        return f'at {times}' + days
    return text


def _day_names(weekday: str) -> str | None:
    """`` Mon,Wed`` for a list of day numbers, ``''`` for every day, None otherwise."""
    if weekday == '*':
        return ''
    if not re.fullmatch(r'\d(,\d)*', weekday):
        return None
    return ' ' + ','.join(_DAY_NAMES[int(d) % 7] for d in weekday.split(','))


def describe_rrule(sched: rrule) -> str:
    """``once at <time>`` for a one-off rule, else its RRULE text."""
    if sched.count == 1 and sched.dtstart is not None and _no_by_rules(sched):
        return 'once at ' + absolute(sched.dtstart)
    rule_text = str(sched.rrule).splitlines()[-1]
    return 'rrule ' + rule_text.removeprefix('RRULE:')


def _no_by_rules(sched: rrule) -> bool:
    names = ('bysetpos', 'bymonth', 'bymonthday', 'byyearday', 'byeaster', 'byweekno',
             'byweekday', 'byhour', 'byminute', 'bysecond')  # fmt: skip
    return all(getattr(sched, name) is None for name in names)


def absolute(moment: datetime | None) -> str:
    """``2027-01-01 09:00:00 UTC``: the instant in UTC, to the second."""
    if moment is None:
        return '-'
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime('%Y-%m-%d %H:%M:%S UTC')


def relative(moment: datetime | None, now: datetime) -> str:
    """``in 4 min``, ``2 h ago``, ``now`` (within a second); ``never`` for None."""
    if moment is None:
        return 'never'
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    delta = (moment - now).total_seconds()
    if abs(delta) < 1:
        return 'now'
    words = _rounded(abs(delta))
    return f'in {words}' if delta > 0 else f'{words} ago'


def _rounded(seconds: float) -> str:
    """At most the two largest units (``1 d 3 h``, not ``1 d 3 h 4 min 5 s``)."""
    whole = int(seconds)
    words = duration(whole).split(' ')
    return ' '.join(words[:4])


def next_run(next_due: datetime | None, score: float | None, now: datetime) -> str:
    """How the list shows a due time: ``in 4 min (2026-...)``, ``due now``, ``never``."""
    if score is None:
        return 'not scheduled'
    if score == 0:
        return 'due now'
    if next_due is None:
        return 'never'
    if next_due <= now:
        return f'due since {relative(next_due, now).removesuffix(" ago")} ({absolute(next_due)})'
    return f'{relative(next_due, now)} ({absolute(next_due)})'
