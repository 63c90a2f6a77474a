"""What a valid entry is: every limit redbeat holds stored values to, in one place.

The codec (:mod:`redbeat.codec`) applies these checks to everything read
from Redis, and every write door (entry ``save``, :class:`redbeat.api.ScheduleClient`,
the command line, ``import``) applies them before anything is written, so
beat never meets a number it cannot compute with or a document it cannot
parse in bounded time.  Each check raises :class:`InvalidValue` (a
``ValueError``) whose message names the field and what is wrong; callers add
the key.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone
from typing import Any

from celery.schedules import BaseSchedule, crontab, schedule, solar

__all__ = [
    'MAX_DEPTH',
    'MAX_FIELD_BYTES',
    'MAX_INTERVAL',
    'MAX_RULE_COUNT',
    'MAX_RULE_INTERVAL',
    'MAX_TIMESTAMP',
    'MAX_UTC_OFFSET',
    'MIN_INTERVAL',
    'MIN_TIMESTAMP',
    'InvalidValue',
    'check_depth',
    'check_document',
    'check_interval',
    'check_rule_numbers',
    'check_schedule',
    'check_set_positions',
    'check_size',
    'finite',
    'timestamp',
    'utc_offset',
]

#: Shortest interval (seconds): below it an interval is stored and shown as "every 0 s".
MIN_INTERVAL = 0.001
#: Longest interval (seconds): 100 years of 365 days; more overflows date arithmetic.
MAX_INTERVAL = 100 * 365 * 86400
#: Most occurrences a counted rule may have: a search may walk them all.
MAX_RULE_COUNT = 100_000
#: Largest rule interval (periods between occurrences): a billion seconds is 31 years.
MAX_RULE_INTERVAL = 1_000_000_000
#: Deepest nesting of a stored JSON document (objects and lists inside each other).
MAX_DEPTH = 32
#: Largest stored field (``definition``, ``meta``, ``policy``), in bytes of UTF-8.
MAX_FIELD_BYTES = 1 << 20
#: A UTC offset must be strictly within this many seconds (Python's own limit).
MAX_UTC_OFFSET = 86400
#: Stored instants (UNIX seconds) that any UTC offset keeps within Python's datetime range.
MIN_TIMESTAMP = datetime(1, 1, 2, tzinfo=timezone.utc).timestamp()
MAX_TIMESTAMP = datetime(9999, 12, 30, tzinfo=timezone.utc).timestamp()


class InvalidValue(ValueError):
    """A stored or given value outside what redbeat can schedule; the message names it."""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def finite(name: str, value: Any) -> float:
    """``value`` as a float, if it is a finite JSON number."""
    if not _is_number(value):
        raise InvalidValue(f'{name} must be a number, not {value!r}')
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        raise InvalidValue(f'{name} is out of range: {value!r}') from None
    if not math.isfinite(number):
        raise InvalidValue(f'{name} must be a finite number, not {value!r}')
    return number


def check_interval(name: str, seconds: Any) -> float:
    """An interval's length, within ``MIN_INTERVAL`` .. ``MAX_INTERVAL`` seconds."""
    every = finite(name, seconds)
    if not MIN_INTERVAL <= every <= MAX_INTERVAL:
        raise InvalidValue(
            f'{name} must be between {MIN_INTERVAL:g} and {MAX_INTERVAL:,} seconds, not {seconds!r}'
        )
    return every


def utc_offset(name: str, seconds: Any) -> timedelta:
    """A UTC offset strictly within ±24 hours."""
    offset = finite(name, seconds)
    if not -MAX_UTC_OFFSET < offset < MAX_UTC_OFFSET:
        raise InvalidValue(f'{name} must be a UTC offset within ±24 hours, not {seconds!r}')
    return timedelta(seconds=offset)


def timestamp(name: str, seconds: Any) -> float:
    """UNIX seconds of an instant within Python's datetime range (years 1 to 9999)."""
    stamp = finite(name, seconds)
    if not MIN_TIMESTAMP <= stamp <= MAX_TIMESTAMP:
        raise InvalidValue(f'{name} must be a time between years 1 and 9999, not {seconds!r}')
    return stamp


def _whole(name: str, value: Any, least: int) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise InvalidValue(f'{name} must be a whole number >= {least}, not {value!r}')


def check_rule_numbers(interval: Any, count: Any) -> None:
    """A recurrence rule's ``interval`` (>= 1: 0 never advances) and ``count`` (>= 1)."""
    _whole('rrule interval', interval, 1)
    _whole('rrule count', count, 1)
    if count is not None and count > MAX_RULE_COUNT:
        raise InvalidValue(f'rrule count must be at most {MAX_RULE_COUNT:,}, not {count!r}')
    if isinstance(interval, int) and interval > MAX_RULE_INTERVAL:
        raise InvalidValue(
            f'rrule interval must be at most {MAX_RULE_INTERVAL:,}, not {interval!r}'
        )


def _many(value: Any) -> int:
    """How many values a rule field holds (None: the one dateutil takes from the start)."""
    if value is None or isinstance(value, int) or not hasattr(value, '__len__'):
        return 1
    return max(1, len(value))


_DAY_FILTERS = ('bymonth', 'bymonthday', 'byyearday', 'byweekno', 'byweekday', 'byeaster')
#: Days one period of each frequency (YEARLY=0 .. SECONDLY=6) can hold.
_DAYS_PER_PERIOD = (366, 31, 7, 1, 1, 1, 1)


def check_set_positions(freq: int, fields: dict[str, Any]) -> None:
    """Each ``bysetpos`` within the candidates one period of the rule can hold.

    python-dateutil looks for a position beyond them period after period up
    to the year 9999 (``FREQ=SECONDLY;BYSETPOS=5`` never yields and never ends).
    """
    positions = fields.get('bysetpos')
    if positions is None:
        return
    day_filters = [fields.get(name) for name in _DAY_FILTERS]
    if all(value is None for value in day_filters):
        days = 1  # dateutil takes the day from the start: one a period
    elif freq == 2 and fields.get('byweekday') is not None:  # WEEKLY: its weekdays
        days = min(7, _many(fields['byweekday']))
    else:
        days = _DAYS_PER_PERIOD[freq]
    times = 1
    for name, finer_than in (('byhour', 3), ('byminute', 4), ('bysecond', 5)):
        if freq <= finer_than:  # a field of a unit shorter than the period multiplies it
            times *= _many(fields.get(name))
    most = days * times
    for pos in [positions] if isinstance(positions, int) else positions:
        if isinstance(pos, int) and not 0 < abs(pos) <= most:
            raise InvalidValue(
                f'rrule bysetpos {pos} is beyond the {most} occurrences one period can hold'
            )


def check_schedule(sched: BaseSchedule) -> None:
    """The schedule's numbers are ones beat can compute with (InvalidValue if not)."""
    if isinstance(sched, (crontab, solar)):
        if isinstance(sched, solar):
            finite('solar lat', sched.lat)
            finite('solar lon', sched.lon)
        return
    if isinstance(sched, schedule):
        check_interval('interval every', sched.run_every.total_seconds())
        return
    from .schedules import rrule  # here: schedules checks its rules with this module

    if isinstance(sched, rrule):
        check_rule_numbers(sched.interval, sched.count)


def check_size(name: str, size: int) -> None:
    """A stored field of ``size`` bytes is within ``MAX_FIELD_BYTES``."""
    if size > MAX_FIELD_BYTES:
        raise InvalidValue(
            f'{name} is {size:,} bytes, more than the limit of {MAX_FIELD_BYTES:,} bytes'
        )


def check_document(name: str, text: str) -> None:
    """A JSON document to store or just read: UTF-8 text within the size and depth limits."""
    size = len(text)
    if not text.isascii():
        try:
            size = len(text.encode('utf-8'))
        except UnicodeEncodeError as exc:
            raise InvalidValue(
                f'{name} holds {text[exc.start]!r}, which is not text (a lone surrogate)'
            ) from None
    check_size(name, size)
    check_depth(name, text)


def check_depth(name: str, text: str) -> None:
    """The JSON ``text`` nests at most ``MAX_DEPTH`` objects and lists.

    Counting brackets is enough for nearly every document (fewer brackets
    than the limit cannot nest deeper); for others the brackets outside
    strings are walked, iteratively, so a deep document cannot exhaust the
    stack (regular expressions do the per-character work).
    """
    if text.count('[') + text.count('{') <= MAX_DEPTH:
        return
    depth = 0
    for bracket in _BRACKETS.findall(_STRINGS.sub('', text)):
        depth += 1 if bracket in '[{' else -1
        if depth > MAX_DEPTH:
            raise InvalidValue(f'{name} nests deeper than {MAX_DEPTH} levels')


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(r'[\[\]{}]')
