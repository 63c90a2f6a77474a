"""The JSON codec for everything redbeat stores: typed values and definitions.

Typed values are JSON objects carrying ``__type__``; only the types listed in
``_BUILDERS`` are ever built, from plain fields, so nothing read from Redis can
name a class to import or carry code to run.  The forms are celery-redbeat
2.x's, so either package reads what the other wrote.

``RedBeatJSONEncoder``/``RedBeatJSONDecoder`` keep their 2.x names for user
code; the scheduler itself goes through :func:`decode_definition`,
:func:`encode_definition`, :func:`decode_meta` and :func:`encode_meta`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any, Callable

from celery.schedules import BaseSchedule, crontab, schedule, solar
from dateutil.rrule import weekday

from . import converters, validation
from .errors import DefinitionError
from .schedules import RULE_FIELDS, rrule

__all__ = [
    'RedBeatJSONDecoder',
    'RedBeatJSONEncoder',
    'decode_definition',
    'decode_meta',
    'dumps',
    'encode_definition',
    'encode_meta',
    'from_timestamp',
    'to_timestamp',
]

CRONTAB_FIELDS = ('minute', 'hour', 'day_of_week', 'day_of_month', 'month_of_year')
DATETIME_FIELDS = ('year', 'month', 'day', 'hour', 'minute', 'second', 'microsecond')
#: Fields of a definition that belong to the entry, not to its schedule.
ENTRY_FIELDS = ('name', 'task', 'schedule', 'args', 'kwargs', 'options', 'enabled')


class TypedValueError(ValueError):
    """A ``__type__`` object whose fields cannot build that type."""


def _refuse_constant(name: str) -> Any:
    # Python's json reads NaN and Infinity, which no JSON writer should produce
    # and no schedule can use (a NaN score, an endless interval).
    raise TypedValueError(f'{name} is not a JSON number')


def _finite_float(text: str) -> float:
    number = float(text)
    if number in (math.inf, -math.inf):  # 1e400: valid JSON, but no float holds it
        raise TypedValueError(f'number {text} is out of range')
    return number


#: ``json.loads`` keywords of every stored document: only finite numbers.
_NUMBERS: dict[str, Any] = {'parse_constant': _refuse_constant, 'parse_float': _finite_float}


def to_timestamp(dt: datetime) -> float:
    """Seconds since the epoch for an aware datetime (naive is taken as UTC)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def get_utcoffset_minutes(dt: datetime) -> float:
    """The UTC offset of ``dt`` in minutes (0 for a naive or UTC datetime); celery-redbeat 2.x."""
    offset = dt.utcoffset()
    return offset.total_seconds() / 60 if offset else 0


def from_timestamp(seconds: float, tz_minutes: float = 0) -> datetime:
    """An aware datetime for seconds since the epoch, at a UTC offset in minutes."""
    tz = timezone(timedelta(minutes=tz_minutes)) if tz_minutes else timezone.utc
    return datetime.fromtimestamp(seconds, tz=tz)


# --- decoding: plain JSON fields -> allow-listed objects -----------------------


def _zone(value: Any) -> tzinfo:
    if value is None or value == 'UTC':
        return timezone.utc
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return timezone(validation.utc_offset('timezone', value))  # 2.x writes seconds
    if isinstance(value, str):
        try:
            return converters.zone(value)
        except converters.UnknownZone as exc:
            raise TypedValueError(str(exc)) from None
    raise TypedValueError(f'timezone must be a zone name or an offset in seconds, not {value!r}')


def _build_datetime(d: dict[str, Any]) -> datetime:
    fields = {k: d[k] for k in DATETIME_FIELDS if k in d}
    extra = set(d) - set(DATETIME_FIELDS) - {'timezone'}
    if extra:
        raise TypedValueError(f'datetime has unknown fields {sorted(extra)}')
    return datetime(tzinfo=_zone(d.get('timezone')), **fields)


def _build_interval(d: dict[str, Any]) -> schedule:
    every = validation.check_interval('interval every', d.get('every'))
    return schedule(run_every=timedelta(seconds=every), relative=bool(d.get('relative', False)))


def _build_crontab(d: dict[str, Any]) -> crontab:
    extra = set(d) - set(CRONTAB_FIELDS)
    if extra:
        raise TypedValueError(f'crontab has unknown fields {sorted(extra)}')
    fields = {k: d.get(k, '*') for k in CRONTAB_FIELDS}
    for name, value in fields.items():
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            raise TypedValueError(f'crontab {name} must be a string, got {value!r}')
    try:
        return crontab(**{k: _cron_field(v) for k, v in fields.items()})
    except Exception as exc:  # celery raises ValueError or its ParseException
        raise TypedValueError(f'invalid crontab: {exc}') from None


def _cron_field(value: str | int) -> str:
    """A crontab field as Celery parses it; ``[1-12]`` (RedBeat README style) is ``1-12``."""
    text = str(value).strip()
    if text.startswith('[') and text.endswith(']'):
        text = text[1:-1]
    return text


def _build_solar(d: dict[str, Any]) -> solar:
    try:
        lat, lon = (
            validation.finite('solar lat', d['lat']),
            validation.finite('solar lon', d['lon']),
        )
        return solar(d['event'], lat, lon)
    except KeyError as missing:
        raise TypedValueError(f'solar needs {missing}') from None
    except Exception as exc:  # ImproperlyConfigured when ephem is missing
        raise TypedValueError(f'invalid solar: {exc}') from None


def _build_weekday(d: dict[str, Any]) -> weekday:
    day, n = d.get('wkday'), d.get('n')
    if not isinstance(day, int) or isinstance(day, bool) or not 0 <= day <= 6:
        raise TypedValueError(f'weekday wkday must be 0 (Monday) to 6, not {day!r}')
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or not 0 < abs(n) <= 53):
        raise TypedValueError(f'weekday n must be a whole number from -53 to 53 but 0, not {n!r}')
    try:
        return weekday(day, n)
    except (KeyError, TypeError, ValueError) as exc:
        raise TypedValueError(f'invalid weekday {d!r}: {exc}') from None


def _build_rrule(d: dict[str, Any]) -> rrule:
    fields = dict(d)
    for key in ('dtstart', 'until'):
        stamp = fields.get(key)
        minutes = fields.pop(key + '_tz', 0) or 0
        if isinstance(stamp, (int, float)) and not isinstance(stamp, bool):
            offset = validation.utc_offset(f'rrule {key}_tz', validation.finite(key, minutes) * 60)
            seconds = validation.timestamp(f'rrule {key}', stamp)
            fields[key] = from_timestamp(seconds, offset.total_seconds() / 60)
        elif stamp is not None and not isinstance(stamp, datetime):
            raise TypedValueError(f'rrule {key} must be a UNIX timestamp (a number), not {stamp!r}')
    extra = set(fields) - set(RULE_FIELDS) - {'dtstart', 'until'}
    if extra:
        raise TypedValueError(f'rrule has unknown fields {sorted(extra)}')
    if 'freq' not in fields:
        raise TypedValueError("rrule needs 'freq'")
    try:
        return rrule(**fields)
    except (TypeError, ValueError) as exc:
        raise TypedValueError(f'invalid rrule: {exc}') from None


_BUILDERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    'datetime': _build_datetime,
    'interval': _build_interval,
    'crontab': _build_crontab,
    'solar': _build_solar,
    'rrule': _build_rrule,
    'weekday': _build_weekday,
}
KNOWN_TYPES = frozenset(_BUILDERS)


def _build(d: dict[str, Any]) -> Any:
    """Object hook: build an allow-listed type; leave any other dict as it is.

    Whatever the fields are, the only error is :class:`TypedValueError`
    (``{"__type__": "datetime"}`` alone makes ``datetime()`` raise TypeError).
    """
    kind = d.get('__type__')
    builder = _BUILDERS.get(kind) if isinstance(kind, str) else None
    if builder is None:
        return d
    try:
        return builder({k: v for k, v in d.items() if k != '__type__'})
    except (TypedValueError, validation.InvalidValue):
        raise  # these name the field already
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise TypedValueError(f'invalid {kind}: {exc}') from None


class RedBeatJSONDecoder(json.JSONDecoder):
    """A JSON decoder that builds redbeat's typed values (and nothing else)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault('object_hook', _build)
        for name, hook in _NUMBERS.items():
            kwargs.setdefault(name, hook)
        super().__init__(*args, **kwargs)


_ENTRY_ONLY = frozenset(ENTRY_FIELDS)


def _build_nested(d: dict[str, Any]) -> Any:
    """Object hook of definitions: as :func:`_build`, but an entry written in the
    flat layout (``__type__`` beside ``task``...) is left for :func:`_split_flat`."""
    if '__type__' not in d or not _ENTRY_ONLY.isdisjoint(d):
        return d
    return _build(d)


# --- encoding: objects -> plain JSON fields ------------------------------------


def _zone_name(dt: datetime) -> str | float:
    tz = dt.tzinfo
    if tz is None or tz is timezone.utc:
        return 'UTC'
    key = getattr(tz, 'key', None) or getattr(tz, 'zone', None)  # zoneinfo, pytz
    if isinstance(key, str):
        return key
    offset = dt.utcoffset()
    seconds = offset.total_seconds() if offset else 0
    return 'UTC' if seconds == 0 else seconds


def _cron_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Iterable):
        return ','.join(str(v) for v in sorted(value))
    raise TypeError(f'cannot store crontab field {value!r}')


def _number(seconds: float) -> float | int:
    return int(seconds) if float(seconds).is_integer() else seconds


# What is stored is the compact form: a field whose value is the one both
# readers (this module's and celery-redbeat 2.x's) assume when it is absent is
# left out.  Every value still goes in a 2.x-readable shape, and the full form
# (every field, as 2.x writes it) is read as before.  Redis keeps a string in
# an allocation of the next size up (..., 128, 160, 192 bytes), so a few dozen
# bytes less in a definition or meta is often a whole size class less per
# entry.  Fields 2.x requires stay: an interval's ``relative`` (2.x raises
# KeyError without it), a datetime's year, month and day, a meta's
# ``last_run_at`` and a definition's ``args`` (2.x would pass None on to Celery).


def _encode_rrule(rule: rrule, full: bool) -> dict[str, Any]:
    out: dict[str, Any] = {'__type__': 'rrule'}
    for name in RULE_FIELDS:
        value = getattr(rule, name)
        # None is dateutil's (and 2.x's) default of every field but freq and interval.
        if full or name == 'freq' or (value != 1 if name == 'interval' else value is not None):
            out[name] = value
    for key in ('dtstart', 'until'):
        moment = getattr(rule, key)
        if moment is not None:
            offset = moment.utcoffset()
            out[key] = _number(to_timestamp(moment))
            if full or offset:  # both readers take a missing offset as 0 (UTC)
                out[key + '_tz'] = _number(offset.total_seconds() / 60) if offset else 0
    return out


def _encode_datetime(moment: datetime, full: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        '__type__': 'datetime',
        'year': moment.year,
        'month': moment.month,
        'day': moment.day,
    }
    # datetime() defaults the time fields to 0; both readers take no timezone as UTC.
    for name in ('hour', 'minute', 'second', 'microsecond'):
        value = getattr(moment, name)
        if value or full:
            out[name] = value
    zone = _zone_name(moment)
    if zone != 'UTC' or full:
        out['timezone'] = zone
    return out


def encode_value(obj: Any, full: bool = False) -> Any:
    """The JSON form of one typed value; TypeError for anything else.

    Compact (fields at their default left out) unless ``full``: then every
    field, as celery-redbeat 2.x writes it.
    """
    if isinstance(obj, datetime):
        return _encode_datetime(obj, full)
    if isinstance(obj, crontab):
        fields = (obj._orig_minute, obj._orig_hour, obj._orig_day_of_week,
                  obj._orig_day_of_month, obj._orig_month_of_year)  # fmt: skip
        texts = zip(CRONTAB_FIELDS, map(_cron_text, fields))
        # '*' is Celery's default of every crontab field (and this decoder's).
        return {'__type__': 'crontab'} | {k: v for k, v in texts if full or v != '*'}
    if isinstance(obj, solar):
        return {'__type__': 'solar', 'event': obj.event, 'lat': obj.lat, 'lon': obj.lon}
    if isinstance(obj, rrule):
        return _encode_rrule(obj, full)
    if isinstance(obj, weekday):
        return {'__type__': 'weekday', 'wkday': obj.weekday} | ({'n': obj.n} if obj.n else {})
    if isinstance(obj, (schedule, timedelta)):
        every = (obj.run_every if isinstance(obj, schedule) else obj).total_seconds()
        relative = isinstance(obj, schedule) and bool(obj.relative)
        return {'__type__': 'interval', 'every': every if full else _number(every),
                'relative': relative}  # fmt: skip
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f'cannot store a {type(obj).__name__} in Redis as JSON: {obj!r}')


def _encode_full(obj: Any) -> Any:
    return encode_value(obj, full=True)


class RedBeatJSONEncoder(json.JSONEncoder):
    """A JSON encoder for redbeat's typed values, in the full form celery-redbeat 2.x writes."""

    def default(self, o: Any) -> Any:
        return _encode_full(o)


#: One encoder for every write (json.dumps would build one per call).  NaN and
#: Infinity are refused (ValueError): the decoder refuses them too.
_ENCODER = json.JSONEncoder(
    default=encode_value, separators=(',', ':'), ensure_ascii=False, allow_nan=False
)
_FULL_ENCODER = json.JSONEncoder(
    default=_encode_full, separators=(',', ':'), ensure_ascii=False, allow_nan=False
)


def dumps(value: Any, full: bool = False) -> str:
    """Compact JSON, as redbeat stores it; with ``full``, every typed value's every field."""
    return (_FULL_ENCODER if full else _ENCODER).encode(value)


#: Decoders made once: ``json.loads`` with keywords builds a new one per call.
_DECODERS: dict[Callable[[dict[str, Any]], Any], json.JSONDecoder] = {
    hook: json.JSONDecoder(object_hook=hook, **_NUMBERS) for hook in (_build, _build_nested)
}
#: Without the object hook: the whole document is parsed in C (see :func:`_one_typed`).
_PLAIN = json.JSONDecoder(**_NUMBERS)
_TYPE_KEY = '__type__'


#: Typed values already built, by their fields (see :func:`_one_typed`).
Built = dict[tuple[tuple[str, type, Any], ...], Any]
#: Most values a :data:`Built` cache holds (emptied when full).
BUILT_MAX = 10_000


def parse(
    key: str,
    field: str,
    text: str,
    hook: Callable[[dict[str, Any]], Any] = _build,
    typed: str | None = None,
    built: Built | None = None,
) -> Any:
    """A stored JSON document, within the size and depth limits, typed values built.

    ``typed``: the member of the document that usually holds its only typed
    value (a definition's ``schedule``, a meta's ``last_run_at``); such a
    document is read without calling ``hook`` on each of its objects, with
    the same result (:func:`_one_typed`), and that value is taken from
    ``built`` when one with the same fields was built before.

    Every failure is a :class:`DefinitionError` naming ``key`` and ``field``.
    """
    try:
        validation.check_document(field, text)
        if typed is not None:
            found = _one_typed(text, typed, hook, built)
            if found is not None:
                return found
        decoder = _DECODERS.get(hook)
        if decoder is None or not isinstance(text, str) or text.startswith('\ufeff'):
            # json.loads words a byte-order mark its own way: keep its messages
            return json.loads(text, object_hook=hook, **_NUMBERS)
        return decoder.decode(text)
    except (TypedValueError, validation.InvalidValue) as exc:
        raise DefinitionError(key, f'{field}: {exc}') from None
    except RecursionError:  # the depth check makes this unreachable; kept as a guard
        raise DefinitionError(key, f'{field} nests too deeply') from None
    except ValueError as exc:
        raise DefinitionError(key, f'{field} is not valid JSON ({exc})') from None


def _one_typed(
    text: str, member: str, hook: Callable[[dict[str, Any]], Any], built: Built | None = None
) -> Any:
    """``text`` decoded as the object hook would, when its one typed value is ``member``
    of the top object; None when that is not so, or not sure (then the hook decodes it).

    The hook changes only objects holding ``__type__``.  Without a ``\\u`` escape
    every ``__type__`` key is spelled out in the text, so when the text holds
    the word once and ``member`` has that key, no other object (not even one
    a duplicate key discarded) is changed by the hook: the C parser reads the
    document and the hook builds that one value.  Any error goes back to the
    hook's path, which words it.
    """
    if text.count(_TYPE_KEY) != 1 or '\\u' in text or text.startswith('\ufeff'):
        return None
    try:
        raw = _PLAIN.decode(text)
    except ValueError:  # not JSON, or a number out of range
        return None
    if type(raw) is not dict or _TYPE_KEY in raw:
        return None
    value = raw.get(member)
    if type(value) is not dict or _TYPE_KEY not in value:
        return None
    try:
        raw[member] = hook(value) if built is None else _built_once(value, hook, built)
    except (TypedValueError, validation.InvalidValue):
        return None
    return raw


_SCALARS = (str, int, float, bool, type(None))


def _built_once(value: dict[str, Any], hook: Callable[[dict[str, Any]], Any], built: Built) -> Any:
    """``hook(value)``, or the value built before from the same fields (their types
    too: ``1``, ``1.0`` and ``true`` are equal in Python)."""
    fields = tuple((name, type(v), v) for name, v in value.items())
    if not all(kind in _SCALARS for _, kind, _ in fields) or _from_the_clock(value):
        return hook(value)
    done = built.get(fields)
    if done is None:
        done = hook(value)
        if type(done) is dict:  # not a typed value: left for the caller to refuse
            return done
        if len(built) >= BUILT_MAX:
            built.clear()
        built[fields] = done
    return done


def _from_the_clock(value: dict[str, Any]) -> bool:
    """An rrule without ``dtstart`` starts when it is built (dateutil's rule): never shared."""
    return value.get('__type__') == 'rrule' and value.get('dtstart') is None


# --- definitions and meta ------------------------------------------------------


def _split_flat(raw: dict[str, Any]) -> dict[str, Any]:
    """The older flat layout: schedule fields and ``__type__`` beside the entry's."""
    sched = {k: v for k, v in raw.items() if k not in ENTRY_FIELDS}
    entry = {k: v for k, v in raw.items() if k in ENTRY_FIELDS}
    # The RedBeat README's crontab example is labelled "interval"; its fields say crontab.
    looks_cron = any(k in sched for k in CRONTAB_FIELDS)
    if sched.get('__type__') == 'interval' and 'every' not in sched and looks_cron:
        sched['__type__'] = 'crontab'
    entry['schedule'] = sched
    return entry


def decode_definition(key: str, text: str | None, built: Built | None = None) -> dict[str, Any]:
    """Read a stored definition into checked entry fields.

    Returns ``name, task, schedule, args, kwargs, options, enabled``; raises
    :class:`DefinitionError` naming ``key`` and what is wrong.  ``built``: a
    cache of schedules by their fields, shared by the definitions decoded
    with it (they get one schedule object; beat's planner passes its own).
    """
    if text is None:
        raise DefinitionError(key, "hash has no 'definition' field")
    raw = parse(key, 'definition', text, _build_nested, 'schedule', built)  # typed values built
    if isinstance(raw, dict) and '__type__' in raw:
        raw = _split_flat(raw)
        try:
            raw['schedule'] = _build(raw['schedule'])
        except (TypedValueError, validation.InvalidValue) as exc:
            raise DefinitionError(key, f'definition: {exc}') from None
    if not isinstance(raw, dict):
        raise DefinitionError(key, f'definition must be a JSON object, not {type(raw).__name__}')
    return check_fields(key, raw)


def check_fields(key: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Validate decoded entry fields and fill the defaults."""
    for required in ('name', 'task'):
        value = fields.get(required)
        if not isinstance(value, str) or not value:
            raise DefinitionError(key, f'definition needs {required!r} (a non-empty string)')
    sched = fields.get('schedule')
    if sched is None:
        raise DefinitionError(key, "definition needs a 'schedule'")
    if isinstance(sched, dict):
        kind = sched.get('__type__')
        if kind is None:
            raise DefinitionError(key, "schedule has no '__type__'")
        raise DefinitionError(key, f'unknown schedule __type__ {kind!r} '
                                   f'(known: {", ".join(sorted(KNOWN_TYPES))})')  # fmt: skip
    if not isinstance(sched, BaseSchedule):
        raise DefinitionError(key, f'schedule must be an object with __type__, not {sched!r}')
    checked = {
        'name': fields['name'],
        'task': fields['task'],
        'schedule': sched,
        'args': _typed(key, fields, 'args', list, []),
        'kwargs': _typed(key, fields, 'kwargs', dict, {}),
        'options': _typed(key, fields, 'options', dict, {}),
        'enabled': _typed(key, fields, 'enabled', bool, True),
    }
    return checked


def _typed(key: str, fields: dict[str, Any], name: str, kind: type, default: Any) -> Any:
    value = fields.get(name)
    if value is None:
        return default
    if kind is list and isinstance(value, tuple):
        return list(value)
    if not isinstance(value, kind):
        raise DefinitionError(key, f'{name} must be a JSON {kind.__name__}, got {value!r}')
    return value


def encode_definition(fields: dict[str, Any], full: bool = False) -> str:
    """The stored JSON of a definition (name, task, schedule, args, ...).

    ``kwargs`` and ``options`` when empty and ``enabled`` when true are left
    out (both readers default them so), unless ``full``.
    """
    get = fields.get
    args, kwargs, options, enabled = get('args'), get('kwargs'), get('options'), get('enabled')
    # Copied only when not already what JSON writes (a list or tuple, dicts): bulk saves.
    out = {
        'name': get('name'),
        'task': get('task'),
        'schedule': get('schedule'),
        'args': args if type(args) in (list, tuple) else list(args or ()),
    }
    if kwargs or full:
        out['kwargs'] = kwargs if type(kwargs) is dict else dict(kwargs or {})
    if options or full:
        out['options'] = options if type(options) is dict else dict(options or {})
    enabled = True if enabled is None else bool(enabled)
    if not enabled or full:
        out['enabled'] = enabled
    return dumps(out, full)


def decode_meta(key: str, text: str | None) -> tuple[datetime | None, int]:
    """``(last_run_at, total_run_count)`` from a stored meta (absent: never run)."""
    if not text:
        return None, 0
    raw = parse(key, 'meta', text, typed='last_run_at')
    if not isinstance(raw, dict):
        raise DefinitionError(key, 'meta must be a JSON object')
    last = raw.get('last_run_at')
    if last is not None and not isinstance(last, datetime):
        raise DefinitionError(key, f'meta last_run_at must be a datetime, got {last!r}')
    count = raw.get('total_run_count') or 0
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise DefinitionError(key, f'meta total_run_count must be an integer, got {count!r}')
    return last, count


def encode_meta(last_run_at: datetime | None, total_run_count: int) -> str:
    """The stored JSON of an entry's run state, as celery-redbeat 2.x reads it.

    Compact as :func:`encode_value`'s datetimes; ``total_run_count`` is left
    out when 0 (2.x's own ``save()`` writes no count at all).  ``last_run_at``
    is always there: 2.x reads ``meta['last_run_at']``.  Written out by hand:
    it is encoded once per sent occurrence, on the hot path.
    """
    count = int(total_run_count)
    tail = f',"total_run_count":{count}}}' if count else '}'
    if last_run_at is None:
        return '{"last_run_at":null' + tail
    d = last_run_at
    clock = ''
    if d.hour:
        clock += f',"hour":{d.hour}'
    if d.minute:
        clock += f',"minute":{d.minute}'
    if d.second:
        clock += f',"second":{d.second}'
    if d.microsecond:
        clock += f',"microsecond":{d.microsecond}'
    zone = _zone_name(d)
    if zone != 'UTC':
        clock += f',"timezone":{json.dumps(zone)}'
    return (
        f'{{"last_run_at":{{"__type__":"datetime","year":{d.year},"month":{d.month},'
        f'"day":{d.day}{clock}}}' + tail
    )
