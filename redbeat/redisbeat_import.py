"""Reading a redisbeat schedule as plain JSON, without executing anything.

redisbeat (``redisbeat.RedisScheduler``) keeps its whole schedule in one
sorted set (``CELERY_REDIS_SCHEDULER_KEY``, default
``celery:beat:order_tasks``): each member is a Celery ``ScheduleEntry``
encoded by jsonpickle, each score the next due time.  jsonpickle's decoder
rebuilds objects by calling the types and functions the text names
(``py/reduce``, ``py/object``, ``py/function``), so decoding it is running
code chosen by whoever could write to Redis.  This module never does: it
parses the member with :func:`json.loads` and accepts only the shapes
jsonpickle gives the values a beat entry needs (the entry, an interval, a
crontab, a solar schedule, tuples, timedeltas), naming the types it does
not accept.  What it reads becomes ``beat_schedule``-like items for
:meth:`redbeat.api.ScheduleClient.entry_from_dict`.

Not carried over: the run state (last run, run count) and the score.
redbeat computes the next due time from the schedule itself, as for a new
entry.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

#: The sorted set redisbeat keeps its schedule in, unless ``CELERY_REDIS_SCHEDULER_KEY`` says.
DEFAULT_KEY = 'celery:beat:order_tasks'

_ENTRY_TYPES = ('celery.beat.ScheduleEntry', 'redisbeat.scheduler.ScheduleEntry')


class Unreadable(ValueError):
    """A member holds something only jsonpickle (running code) could rebuild."""


@dataclass(frozen=True)
class Member:
    """One member of the sorted set: its name and item, or why it cannot be read."""

    number: int  # 1-based position in the input
    name: str | None
    item: dict[str, Any] | None
    error: str | None


def read_members(lines: Iterable[str]) -> list[Member]:
    """Each non-empty line (a sorted-set member, as ``redis-cli --raw ZRANGE`` prints it)."""
    members = []
    for number, line in enumerate((ln for ln in lines if ln.strip()), start=1):
        members.append(read_member(number, line.strip()))
    return members


def read_member(number: int, text: str) -> Member:
    """One jsonpickle-encoded ``ScheduleEntry`` as a beat_schedule item."""
    try:
        value = json.loads(text)
    except ValueError:
        kind = 'pickle data' if text.startswith(('\\x80', '\x80')) else 'not JSON'
        return Member(number, None, None, f'{kind}: redbeat reads only JSON')
    name = None
    try:
        fields = _reduced(value, _ENTRY_TYPES, 'the entry')
        if len(fields) < 8:
            raise Unreadable(f'the entry has {len(fields)} fields, expected 8')
        name, task, _last_run, _count, sched, args, kwargs, options = fields[:8]
        if not isinstance(name, str) or not name:
            raise Unreadable(f'the entry name is {name!r}, not a string')
        if not isinstance(task, str):
            raise Unreadable(f'the task is {task!r}, not a string')
        item = {
            'task': task,
            'schedule': _schedule(sched),
            'args': _plain(_tuple(args, 'args'), 'args'),
            'kwargs': _plain(kwargs or {}, 'kwargs'),
            'options': _plain(options or {}, 'options'),
        }
    except Unreadable as exc:
        return Member(number, name, None, str(exc))
    return Member(number, name, item, None)


def _type_name(value: Any) -> str | None:
    if isinstance(value, dict) and isinstance(value.get('py/type'), str):
        return str(value['py/type'])
    return None


def _reduced(value: Any, types: tuple[str, ...], what: str) -> list[Any]:
    """The arguments of a ``py/reduce`` of one of ``types``; Unreadable otherwise."""
    reduce = value.get('py/reduce') if isinstance(value, dict) else None
    if not isinstance(reduce, list) or len(reduce) < 2:
        raise Unreadable(f'{what} is {_describe(value)}, not a jsonpickled {" or ".join(types)}')
    kind = _type_name(reduce[0])
    if kind not in types:
        found = f'a pickled {kind}' if kind else _describe(reduce[0])
        raise Unreadable(f'{what} is {found}, which redbeat does not read')
    return _tuple(reduce[1], what)


def _tuple(value: Any, what: str) -> list[Any]:
    if isinstance(value, dict) and set(value) == {'py/tuple'}:
        value = value['py/tuple']
    if value is None:
        return []
    if not isinstance(value, list):
        raise Unreadable(f'{what} is {_describe(value)}, not a tuple or list')
    return value


def _describe(value: Any) -> str:
    """A short description of a jsonpickle value, naming the Python type it encodes."""
    if isinstance(value, dict):
        for tag in ('py/object', 'py/type', 'py/function'):
            if isinstance(value.get(tag), str):
                return f'a pickled {value[tag]} ({tag})'
        reduce = value.get('py/reduce')
        if isinstance(reduce, list) and reduce:
            inner = _type_name(reduce[0]) or 'object'
            return f'a pickled {inner} (py/reduce)'
        if 'py/id' in value:
            return 'a reference to another pickled object (py/id)'
    return repr(value)[:60]


def _plain(value: Any, what: str) -> Any:
    """``value`` if it is plain JSON (tuples as lists); Unreadable naming a pickled part."""
    if isinstance(value, dict):
        tags = [key for key in value if isinstance(key, str) and key.startswith('py/')]
        if tags == ['py/tuple']:
            return [_plain(v, what) for v in _tuple(value, what)]
        if tags:
            raise Unreadable(f'{what} holds {_describe(value)}: only JSON values can be read')
        return {str(k): _plain(v, f'{what}[{k!r}]') for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, what) for v in value]
    return value


def _schedule(value: Any) -> dict[str, Any]:
    """An interval, crontab or solar schedule in redbeat's stored form."""
    kinds = ('celery.schedules.schedule', 'celery.schedules.crontab', 'celery.schedules.solar')
    reduce = value.get('py/reduce') if isinstance(value, dict) else None
    kind = _type_name(reduce[0]) if isinstance(reduce, list) and reduce else None
    args = _reduced(value, kinds, 'the schedule')
    if kind == 'celery.schedules.schedule':
        every = _seconds(args[0] if args else None)
        relative = bool(args[1]) if len(args) > 1 else False
        return {'__type__': 'interval', 'every': every, 'relative': relative}
    if kind == 'celery.schedules.crontab':
        names = ('minute', 'hour', 'day_of_week', 'day_of_month', 'month_of_year')
        fields = {n: str(v) for n, v in zip(names, args) if isinstance(v, (str, int))}
        if len(fields) != len(names):
            raise Unreadable(f'the crontab fields {args!r} are not all strings or numbers')
        return {'__type__': 'crontab', **fields}
    if len(args) != 3 or not isinstance(args[0], str):
        raise Unreadable(f'the solar schedule {args!r} is not (event, latitude, longitude)')
    return {'__type__': 'solar', 'event': args[0], 'lat': args[1], 'lon': args[2]}


def _seconds(value: Any) -> float:
    """An interval's length: a jsonpickled timedelta, or a number of seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    parts = _reduced(value, ('datetime.timedelta',), 'the interval')
    if len(parts) != 3 or not all(isinstance(p, (int, float)) for p in parts):
        raise Unreadable(f'the interval {parts!r} is not (days, seconds, microseconds)')
    days, seconds, micros = parts
    return float(days * 86400 + seconds + micros / 1e6)
