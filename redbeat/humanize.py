"""Schedules and times in human words, and durations read from them.  Pure: no I/O, no clock.

The CLI shows ``every 5 min`` or ``at 03:00 Mon`` rather than a repr, and
``in 4 min`` next to an absolute time (UTC, or the entry's own time zone);
``now`` is always a parameter so the wording is tested with fixed datetimes.
:func:`parse_duration` is the inverse of the interval wording (``30s``,
``5m``, ``1h30m``, ``1d``); :func:`describe_policy` puts an entry's
scheduling policy in words.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone, tzinfo
from typing import TYPE_CHECKING, Any

from celery.schedules import crontab, schedule, solar

from .schedules import rrule

if TYPE_CHECKING:
    from .policy import Policy

#: Units, largest first: (seconds, short name used in words and in durations).
_UNITS = ((86400, 'd'), (3600, 'h'), (60, 'min'), (1, 's'))
_DURATION_UNITS = {'d': 86400, 'h': 3600, 'm': 60, 'min': 60, 's': 1}
_DURATION = re.compile(r'(\d+(?:\.\d+)?)\s*(d|h|min|m|s)', re.IGNORECASE)
_DAY_NAMES = ('Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat')


def parse_duration(text: str, allow_zero: bool = False) -> float:
    """Seconds in ``30s``, ``5m``, ``1h30m``, ``1d`` or a bare number of seconds.

    Raises ValueError with the accepted forms when ``text`` is none of them,
    or when it is 0 (unless ``allow_zero``) or negative.
    """
    cleaned = text.strip().lower()
    try:
        seconds = float(cleaned)
    except ValueError:
        seconds = _sum_units(cleaned)
    if seconds != seconds or seconds in (float('inf'), float('-inf')):
        raise ValueError(f'{text!r} is not a duration; use e.g. 30s, 5m, 1h30m or 1d')
    if allow_zero and not seconds >= 0:
        raise ValueError(f'{text!r}: must be 0 seconds or more')
    if allow_zero and seconds == 0:
        return 0.0
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


def describe(sched: Any, tz: tzinfo | None = None) -> str:
    """A schedule in a few words (``every 5 min``, ``at 03:00 Mon``, ``cron 0 3 1 * *``).

    ``tz`` is the entry's own zone: named after crontab fields (which are read
    in it), and the zone a one-off's time is shown in (default UTC).
    """
    if isinstance(sched, crontab):
        words = describe_cron(cron_fields(sched))
        return words if tz is None or tz is timezone.utc else f'{words} {tz}'
    if isinstance(sched, rrule):
        return describe_rrule(sched, tz)
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


def describe_rrule(sched: rrule, tz: tzinfo | None = None) -> str:
    """``once at <time>`` for a one-off rule, else its RRULE text."""
    if sched.count == 1 and sched.dtstart is not None and _no_by_rules(sched):
        return 'once at ' + absolute(sched.dtstart, tz)
    rule_text = str(sched.rrule).splitlines()[-1]
    return 'rrule ' + rule_text.removeprefix('RRULE:')


def _no_by_rules(sched: rrule) -> bool:
    names = ('bysetpos', 'bymonth', 'bymonthday', 'byyearday', 'byeaster', 'byweekno',
             'byweekday', 'byhour', 'byminute', 'bysecond')  # fmt: skip
    return all(getattr(sched, name) is None for name in names)


def absolute(moment: datetime | None, tz: tzinfo | None = None) -> str:
    """``2027-01-01 09:00:00 UTC``: the instant to the second, in UTC or in ``tz``.

    In a zone the abbreviation in force at that instant follows
    (``2026-03-29 03:00:00 CEST``), so the two sides of a DST change differ.
    """
    if moment is None:
        return '-'
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    if tz is None or tz is timezone.utc:
        return moment.astimezone(timezone.utc).strftime('%Y-%m-%d %H:%M:%S UTC')
    local = moment.astimezone(tz)
    return local.strftime('%Y-%m-%d %H:%M:%S ') + (local.tzname() or str(tz))


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


def next_run(
    next_due: datetime | None, score: float | None, now: datetime, tz: tzinfo | None = None
) -> str:
    """How the list shows a due time: ``in 4 min (2026-...)``, ``due now``, ``never``.

    The absolute time is in ``tz`` when given (the entry's zone), else UTC.
    """
    if score is None:
        return 'not scheduled'
    if score == 0:
        return 'due now'
    if next_due is None:
        return 'never'
    when = absolute(next_due, tz)
    if next_due <= now:
        return f'due since {relative(next_due, now).removesuffix(" ago")} ({when})'
    return f'{relative(next_due, now)} ({when})'


def describe_policy(policy: Policy) -> list[tuple[str, str]]:
    """An entry's policy as ``(label, words)`` pairs, one per field that is set.

    Unset fields (the app's defaults apply) are left out; the default policy
    gives an empty list.
    """
    tz = policy.tz
    out: list[tuple[str, str]] = []
    if policy.timezone is not None:
        out.append(('time zone', policy.timezone))
    if policy.missed is not None:
        words = policy.missed
        if policy.missed == 'all' and policy.missed_limit is not None:
            words += f' (at most {policy.missed_limit})'
        out.append(('missed runs', words))
    elif policy.missed_limit is not None:
        out.append(('missed limit', str(policy.missed_limit)))
    if policy.catchup_window is not None:
        out.append(('catch-up', 'within ' + duration(policy.catchup_window)))
    if policy.start_at is not None:
        out.append(('starts', absolute(policy.start_at, tz)))
    if policy.end_at is not None:
        out.append(('ends', absolute(policy.end_at, tz)))
    if policy.max_runs is not None:
        out.append(('max runs', str(policy.max_runs)))
    if policy.on_finish is not None:
        out.append(('when done', policy.on_finish))
    if policy.jitter is not None:
        out.append(('jitter', 'up to ' + duration(policy.jitter)))
    if policy.anchor is not None:
        out.append(('anchor', absolute(policy.anchor, tz)))
    if policy.history is not None:
        out.append(('history', f'keeps {policy.history}'))
    return out
