"""Hypothesis strategies of hostile stored entries: arbitrary and near-valid JSON, raw bytes.

Near-valid values matter most: a valid entry with one field replaced reaches
the code past the parser (builders, schedule math, planning), where the
crashes were.  Documents are written as JSON text with ``allow_nan``, so
``NaN`` and ``Infinity`` reach Redis as a hand-written entry can hold them.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

#: Numbers that broke something once, or sit on a limit.
SPECIAL_NUMBERS = st.sampled_from([
    0, -1, 1, 59, 1e-9, 0.0005, 0.001, 1e-300, 1e12, 1e20, 1e308, -1e308, 2**31, 2**63,
    10**30, 3_153_600_000, 3_153_600_001, 86399, 86400, -86400, float('nan'), float('inf'),
    float('-inf'), True, False,
])  # fmt: skip

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=-3, max_value=70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(['*', '0', '1-5', '*/0', 'UTC', 'Europe/Paris', 'sunrise', 'MO', '']),
    SPECIAL_NUMBERS,
)

TYPES = ['datetime', 'interval', 'crontab', 'solar', 'rrule', 'weekday', 'other']
#: Every field name any typed value has, so near-valid fields are drawn.
FIELDS = [
    'year', 'month', 'day', 'hour', 'minute', 'second', 'microsecond', 'timezone', 'every',
    'relative', 'day_of_week', 'day_of_month', 'month_of_year', 'event', 'lat', 'lon', 'freq',
    'interval', 'count', 'dtstart', 'until', 'dtstart_tz', 'until_tz', 'wkst', 'bysetpos',
    'bymonth', 'bymonthday', 'byyearday', 'byeaster', 'byweekno', 'byweekday', 'byhour',
    'byminute', 'bysecond', 'wkday', 'n',
]  # fmt: skip


def _typed(children: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(
        lambda kind, fields: {'__type__': kind, **fields},
        st.sampled_from(TYPES),
        st.dictionaries(st.sampled_from(FIELDS), children, max_size=8),
    )


VALUES: st.SearchStrategy[Any] = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=8), children, max_size=4),
        _typed(children),
    ),
    max_leaves=16,
)

#: Valid typed values, one field of which a test may replace.
VALID_SCHEDULES = [
    {'__type__': 'interval', 'every': 60, 'relative': False},
    {'__type__': 'crontab', 'minute': '0', 'hour': '3', 'day_of_week': '*',
     'day_of_month': '*', 'month_of_year': '*'},
    {'__type__': 'rrule', 'freq': 6, 'interval': 1, 'dtstart': 1_700_000_000, 'dtstart_tz': 0},
    {'__type__': 'solar', 'event': 'sunrise', 'lat': 48.85, 'lon': 2.35},
]  # fmt: skip
VALID_DATETIME = {'__type__': 'datetime', 'year': 2026, 'month': 1, 'day': 1, 'hour': 0,
                  'minute': 0, 'second': 0, 'microsecond': 0, 'timezone': 'UTC'}  # fmt: skip
POLICY_FIELDS = ['timezone', 'missed', 'missed_limit', 'catchup_window', 'start_at', 'end_at',
                 'max_runs', 'on_finish', 'jitter', 'anchor', 'history']  # fmt: skip


@st.composite
def near_valid(draw: st.DrawFn, base: dict[str, Any]) -> dict[str, Any]:
    """``base`` with one to three fields set to drawn values (or removed)."""
    out = dict(base)
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from(sorted(set(out) | set(FIELDS[:8]))))
        if draw(st.booleans()) and name in out and name != '__type__':
            del out[name]
        else:
            out[name] = draw(st.one_of(SPECIAL_NUMBERS, VALUES))
    return out


@st.composite
def definitions(draw: st.DrawFn) -> dict[str, Any]:
    """An entry whose schedule, arguments or options are near-valid or arbitrary."""
    schedule = draw(st.one_of(st.sampled_from(VALID_SCHEDULES).flatmap(near_valid), VALUES))
    body: dict[str, Any] = {'name': 'bad', 'task': 'proj.tasks.bad', 'schedule': schedule,
                            'args': [], 'kwargs': {}, 'options': {}, 'enabled': True}  # fmt: skip
    for name in draw(st.sets(st.sampled_from(['args', 'kwargs', 'options', 'enabled', 'name']))):
        body[name] = draw(st.one_of(VALUES, st.just([{'__type__': 'datetime'}])))
    return body


@st.composite
def metas(draw: st.DrawFn) -> dict[str, Any]:
    last = draw(st.one_of(near_valid(VALID_DATETIME), VALUES))
    return {'last_run_at': last, 'total_run_count': draw(st.one_of(SPECIAL_NUMBERS, VALUES))}


@st.composite
def policies(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.sets(st.sampled_from(POLICY_FIELDS), min_size=1, max_size=4))
    value = st.one_of(SPECIAL_NUMBERS, VALUES, near_valid(VALID_DATETIME))
    return {name: draw(value) for name in names}


def text(value: Any) -> str:
    """JSON as a hand-written entry may hold it: NaN and Infinity included."""
    return json.dumps(value, allow_nan=True)


@st.composite
def mutated_bytes(draw: st.DrawFn, valid: bytes) -> bytes:
    """``valid`` with a few bytes overwritten, inserted or removed."""
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(['set', 'insert', 'delete']))
        byte = draw(st.integers(0, 255))
        if action == 'set' and at < len(data):
            data[at] = byte
        elif action == 'insert':
            data.insert(at, byte)
        elif at < len(data):
            del data[at]
    return bytes(data)
