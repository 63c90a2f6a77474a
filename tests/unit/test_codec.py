"""The JSON codec (redbeat.codec): celery-redbeat 2.x data both ways, errors, safety."""

from __future__ import annotations

import json
import pickle
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from celery.schedules import crontab, schedule
from dateutil import rrule as du
from dateutil.rrule import weekday
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redbeat.codec import (
    Built,
    RedBeatJSONDecoder,
    RedBeatJSONEncoder,
    _build,
    _build_nested,
    _one_typed,
    decode_definition,
    decode_meta,
    encode_definition,
    encode_meta,
    parse,
)
from redbeat.errors import DefinitionError
from redbeat.schedules import rrule
from tests.unit.fixtures import redbeat2x as v2

UTC = timezone.utc
PARIS = ZoneInfo('Europe/Paris')
KEY = 'redbeat:some-entry'
ENTRY_KEYS = {'name', 'task', 'schedule', 'args', 'kwargs', 'options', 'enabled'}


# --- a re-implementation of celery-redbeat 2.x's reader -----------------------


def _legacy_hook(d: dict[str, Any]) -> Any:
    """celery-redbeat 2.x ``RedBeatJSONDecoder.dict_to_object``, step for step."""
    if '__type__' not in d:
        return d
    d = dict(d)
    objtype = d.pop('__type__')
    if objtype == 'datetime':
        zone = d.pop('timezone', 'UTC')
        try:
            tzinfo: Any = timezone(timedelta(minutes=zone / 60))
        except TypeError:
            tzinfo = UTC if zone == 'UTC' else ZoneInfo(zone)
        return datetime(tzinfo=tzinfo, **d)
    if objtype == 'interval':
        return schedule(run_every=d['every'], relative=d['relative'])
    if objtype == 'crontab':
        return crontab(**d)
    if objtype == 'weekday':
        return weekday(**d)
    if objtype == 'rrule':
        for key, tz_key in (('dtstart', 'dtstart_tz'), ('until', 'until_tz')):
            stamp = d.get(key)
            minutes = d.pop(tz_key, 0)
            if stamp is not None:
                tz = timezone(timedelta(minutes=minutes)) if minutes else UTC
                d[key] = datetime.fromtimestamp(stamp, tz=tz)
        return rrule(**d)
    d['__type__'] = objtype
    return d


def legacy_decode(text: str) -> Any:
    return json.loads(text, object_hook=_legacy_hook)


class LegacyEntry:
    """Stands for 2.x's ``RedBeatSchedulerEntry(app=app, **definition)``: its keyword
    arguments and defaults (2.x's, then Celery's ``ScheduleEntry``'s), no others."""

    def __init__(
        self,
        name: Any = None,
        task: Any = None,
        schedule: Any = None,
        args: Any = None,
        kwargs: Any = None,
        enabled: Any = True,
        options: Any = None,
        last_run_at: Any = None,
        total_run_count: Any = None,
    ) -> None:
        self.name, self.task, self.schedule = str(name), task, schedule
        self.args, self.enabled = args, enabled  # 2.x passes args=None on: Celery keeps it
        self.kwargs = kwargs if kwargs else {}
        self.options = options if options else {}
        self.last_run_at, self.total_run_count = last_run_at, total_run_count or 0


def legacy_load(definition: str, meta: str) -> LegacyEntry:
    """2.x's ``from_key``: the definition updated with the meta, then ``meta['last_run_at']``."""
    fields = legacy_decode(definition)
    run_state = legacy_decode(meta)
    fields.update(run_state)
    entry = LegacyEntry(**fields)
    entry.last_run_at = run_state['last_run_at']
    return entry


# --- reading what 2.x wrote ------------------------------------------------------


def test_decode_2x_interval() -> None:
    fields = decode_definition(KEY, v2.INTERVAL_DEFINITION)
    assert set(fields) == ENTRY_KEYS
    assert fields['name'] == 'every-5s'
    assert fields['task'] == 'proj.tasks.ping'
    assert isinstance(fields['schedule'], schedule)
    assert fields['schedule'].run_every == timedelta(seconds=5)
    assert fields['schedule'].relative is False
    assert fields['args'] == [1, 'two']
    assert fields['kwargs'] == {'k': 'v'}
    assert fields['options'] == {'queue': 'q1'}
    assert fields['enabled'] is True


def test_decode_2x_relative_disabled_interval() -> None:
    fields = decode_definition(KEY, v2.RELATIVE_INTERVAL_DEFINITION)
    assert fields['schedule'].run_every == timedelta(hours=1)
    assert fields['schedule'].relative is True
    assert fields['enabled'] is False


@pytest.mark.parametrize(
    ('text', 'expected'),
    [
        (v2.CRONTAB_DEFINITION, crontab(minute='0', hour='3')),
        (v2.CRONTAB_COMPLEX_DEFINITION,
         crontab(minute='*/15', hour='8-18', day_of_week='mon-fri', day_of_month='1-7',
                 month_of_year='1,6')),
    ],
)  # fmt: skip
def test_decode_2x_crontab(text: str, expected: crontab) -> None:
    fields = decode_definition(KEY, text)
    assert isinstance(fields['schedule'], crontab)
    assert fields['schedule'] == expected
    assert fields['schedule'].hour == expected.hour
    assert fields['schedule'].day_of_week == expected.day_of_week


def test_decode_2x_rrule_with_offsets_and_weekdays() -> None:
    rule = decode_definition(KEY, v2.RRULE_DEFINITION)['schedule']
    assert isinstance(rule, rrule)
    assert rule.freq == du.WEEKLY
    assert rule.dtstart == datetime(2026, 1, 1, 7, tzinfo=UTC)
    assert rule.dtstart.utcoffset() == timedelta(minutes=120)
    assert rule.until == datetime(2026, 12, 31, tzinfo=UTC)
    assert [d.weekday for d in rule.byweekday] == [0, 4]
    # 2026-01-05 is a Monday; the rule keeps 09:00 at +02:00
    assert rule.next_after(datetime(2026, 1, 3, tzinfo=UTC)) == datetime(2026, 1, 5, 7, tzinfo=UTC)


def test_decode_oldest_2x_rrule_without_tz_minutes() -> None:
    rule = decode_definition(KEY, v2.OLDEST_RRULE_DEFINITION)['schedule']
    assert isinstance(rule, rrule)
    assert rule.dtstart == datetime(2019, 1, 1, tzinfo=UTC)
    assert rule.dtstart.utcoffset() == timedelta(0)
    assert rule.count == 5 and rule.interval == 2
    assert rule.freq == du.DAILY
    assert rule.next_after(datetime(2019, 1, 1, tzinfo=UTC)) == datetime(2019, 1, 3, tzinfo=UTC)
    assert rule.next_after(datetime(2019, 1, 9, tzinfo=UTC)) is None  # count=5 exhausted


def test_decode_2x_datetime_arguments() -> None:
    fields = decode_definition(KEY, v2.DATETIME_ARGS_DEFINITION)
    (paris,) = fields['args']
    assert paris == datetime(2026, 7, 14, 12, tzinfo=PARIS)
    assert getattr(paris.tzinfo, 'key', None) == 'Europe/Paris'
    offset = fields['kwargs']['at']
    assert offset == datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=-5)))
    assert offset.utcoffset() == timedelta(hours=-5)


@pytest.mark.parametrize(
    ('text', 'last_run_at', 'count'),
    [
        (v2.META, datetime(2024, 5, 17, 9, 30, 15, 123456, tzinfo=UTC), 42),
        (v2.META_IANA, datetime(2024, 5, 17, 9, 30, 15, tzinfo=UTC), 7),
        (v2.META_OFFSET, datetime(2024, 5, 17, 9, 30, 15, tzinfo=UTC), 3),
        (v2.META_NEVER_RUN, None, 0),
        (v2.OLDEST_META, datetime(2019, 2, 3, 4, 5, 6, 7, tzinfo=UTC), 1),
        (None, None, 0),
    ],
)
def test_decode_2x_meta(text: str | None, last_run_at: datetime | None, count: int) -> None:
    last, total = decode_meta(KEY, text)
    assert last == last_run_at
    assert total == count
    if last is not None:
        assert last.tzinfo is not None


def test_decode_meta_iana_zone_kept() -> None:
    last, _ = decode_meta(KEY, v2.META_IANA)
    assert last is not None and getattr(last.tzinfo, 'key', None) == 'Europe/Paris'


# --- the flat layout ---------------------------------------------------------------


def test_decode_flat_interval() -> None:
    fields = decode_definition(KEY, v2.FLAT_INTERVAL_DEFINITION)
    assert set(fields) == ENTRY_KEYS
    assert fields['schedule'] == schedule(timedelta(seconds=5))
    assert fields['args'] == ['param1', 'param2']
    assert fields['kwargs'] == {'max_targets': 100}
    assert fields['task'] == 'task-name-goes-here'


def test_decode_flat_crontab_labelled_interval() -> None:
    fields = decode_definition(KEY, v2.FLAT_CRONTAB_MISLABELLED_DEFINITION)
    assert isinstance(fields['schedule'], crontab)
    assert fields['schedule'] == crontab(minute='5', day_of_week='monday', day_of_month='*/7')
    assert fields['args'] == ['param1', 'param2']


def test_decode_flat_crontab_defaults_missing_fields_to_star() -> None:
    text = json.dumps({'name': 'n', 'task': 't', '__type__': 'crontab', 'minute': '7'})
    assert decode_definition(KEY, text)['schedule'] == crontab(minute='7')


def test_decode_readme_crontab_example_verbatim() -> None:
    # month_of_year "[1-12]" as printed in the README: a bracketed range.
    fields = decode_definition(KEY, v2.README_CRONTAB_VERBATIM_DEFINITION)
    assert isinstance(fields['schedule'], crontab)
    assert fields['schedule'].month_of_year == set(range(1, 13))
    assert fields['schedule'].minute == {5}
    assert fields['schedule'].day_of_week == {1}


# --- writing what 2.x reads ----------------------------------------------------------


def _definition(sched: Any, **extra: Any) -> dict[str, Any]:
    fields = {'name': 'n', 'task': 'proj.t', 'schedule': sched, 'args': [1],
              'kwargs': {'a': 'b'}, 'options': {'queue': 'q'}, 'enabled': True}  # fmt: skip
    fields.update(extra)
    return fields


SCHEDULES = [
    pytest.param(schedule(timedelta(seconds=30)), id='interval'),
    pytest.param(schedule(timedelta(minutes=90), relative=True), id='relative-interval'),
    pytest.param(schedule(timedelta(seconds=0.5)), id='sub-second-interval'),
    pytest.param(crontab(minute='*/5', hour='1,2', day_of_week='mon-fri'), id='crontab'),
    pytest.param(crontab(minute=0, hour=[3, 4]), id='crontab-non-string-fields'),
    pytest.param(rrule(du.WEEKLY, dtstart=datetime(2026, 1, 1, 9, tzinfo=UTC),
                       byweekday=[du.MO, du.FR], count=10), id='rrule'),
    pytest.param(rrule(du.DAILY, dtstart=datetime(2026, 1, 1, 9,
                                                   tzinfo=timezone(timedelta(hours=2))),
                       until=datetime(2026, 2, 1, tzinfo=UTC)), id='rrule-offset-until'),
]  # fmt: skip


@pytest.mark.parametrize('sched', SCHEDULES)
def test_encoded_definition_is_read_by_2x(sched: Any) -> None:
    text = encode_definition(_definition(sched))
    raw = json.loads(text)
    assert set(raw) == ENTRY_KEYS - {'enabled'}  # true: left out
    entry = legacy_load(text, encode_meta(None, 0))
    assert entry.name == 'n' and entry.task == 'proj.t'
    assert entry.args == [1] and entry.kwargs == {'a': 'b'} and entry.options == {'queue': 'q'}
    assert entry.enabled is True
    assert type(entry.schedule) is type(sched)
    assert entry.schedule == sched
    if isinstance(sched, rrule):
        assert entry.schedule.dtstart == sched.dtstart
        assert entry.schedule.dtstart.utcoffset() == sched.dtstart.utcoffset()
        moment = datetime(2026, 1, 10, tzinfo=UTC)
        assert entry.schedule.next_after(moment) == sched.next_after(moment)
    # and redbeat reads its own output back to the same thing
    assert decode_definition(KEY, text)['schedule'] == sched


@pytest.mark.parametrize(
    'last_run_at',
    [
        datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC),
        datetime(2026, 3, 1, 12, 0, 0, tzinfo=PARIS),
        datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
        datetime(2026, 3, 1, 12, 0, 0),  # naive: stored as UTC
        None,
    ],
)
def test_encoded_meta_is_read_by_2x(last_run_at: datetime | None) -> None:
    text = encode_meta(last_run_at, 5)
    raw = json.loads(text)
    assert set(raw) == {'last_run_at', 'total_run_count'}
    entry = legacy_load(encode_definition(_definition(schedule(timedelta(seconds=1)))), text)
    assert entry.total_run_count == 5
    if last_run_at is None:
        assert entry.last_run_at is None
    else:
        expected = last_run_at if last_run_at.tzinfo else last_run_at.replace(tzinfo=UTC)
        assert entry.last_run_at == expected
        assert entry.last_run_at.utcoffset() == expected.utcoffset()
    # and redbeat reads it back
    assert decode_meta(KEY, text) == (None if last_run_at is None else entry.last_run_at, 5)


def test_iana_zone_survives_a_round_trip() -> None:
    moment = datetime(2026, 7, 14, 12, 0, 0, 42, tzinfo=PARIS)
    text = encode_definition(_definition(schedule(timedelta(seconds=9)), args=[moment]))
    (back,) = decode_definition(KEY, text)['args']
    assert back == moment
    assert getattr(back.tzinfo, 'key', None) == 'Europe/Paris'
    (legacy,) = legacy_decode(text)['args']
    assert legacy == moment and getattr(legacy.tzinfo, 'key', None) == 'Europe/Paris'
    last, _ = decode_meta(KEY, encode_meta(moment, 1))
    assert last == moment and getattr(last.tzinfo, 'key', None) == 'Europe/Paris'


def test_2x_fixtures_round_trip_through_redbeat() -> None:
    for text in (v2.INTERVAL_DEFINITION, v2.CRONTAB_DEFINITION, v2.RRULE_DEFINITION,
                 v2.DATETIME_ARGS_DEFINITION, v2.OLDEST_RRULE_DEFINITION):  # fmt: skip
        fields = decode_definition(KEY, text)
        again = encode_definition(fields)
        assert len(again) < len(text)
        assert decode_definition(KEY, again) == fields
        legacy_original = vars(legacy_load(text, v2.META))
        assert vars(legacy_load(again, v2.META)) == legacy_original
        # the full form is 2.x's own, field for field
        assert legacy_decode(encode_definition(fields, full=True)) == legacy_decode(text)


def test_encoder_class_handles_typed_values() -> None:
    value = {'when': datetime(2026, 1, 1, tzinfo=UTC), 'every': schedule(timedelta(seconds=2))}
    text = json.dumps(value, cls=RedBeatJSONEncoder)
    assert json.loads(text, cls=RedBeatJSONDecoder) == value


# --- errors ----------------------------------------------------------------------


GOOD = {'name': 'n', 'task': 't', 'schedule': {'__type__': 'interval', 'every': 5}}


def _with(**changes: Any) -> str:
    body = dict(GOOD)
    for k, v in changes.items():
        if v is ...:
            body.pop(k)
        else:
            body[k] = v
    return json.dumps(body)


@pytest.mark.parametrize(
    ('text', 'message'),
    [
        pytest.param('{"name": "n", "task": ', 'not valid JSON', id='not-json'),
        pytest.param('', 'not valid JSON', id='empty'),
        pytest.param('[1, 2]', 'JSON object', id='array'),
        pytest.param(_with(schedule={'__type__': 'fortnightly'}), "'fortnightly'",
                     id='unknown-type'),
        pytest.param(_with(schedule={'every': 5}), '__type__', id='schedule-without-type'),
        pytest.param(_with(task=...), "'task'", id='missing-task'),
        pytest.param(_with(task=''), "'task'", id='empty-task'),
        pytest.param(_with(name=...), "'name'", id='missing-name'),
        pytest.param(_with(schedule=...), "'schedule'", id='missing-schedule'),
        pytest.param(_with(schedule={'__type__': 'crontab', 'minute': '99'}), 'crontab',
                     id='crontab-minute-99'),
        pytest.param(_with(schedule={'__type__': 'crontab', 'hour': '25'}), 'crontab',
                     id='crontab-hour-25'),
        pytest.param(_with(schedule={'__type__': 'interval', 'every': 0}), 'every', id='every-0'),
        pytest.param(_with(schedule={'__type__': 'interval', 'every': -5}), 'every',
                     id='every-negative'),
        pytest.param(_with(schedule={'__type__': 'interval', 'every': '5'}), 'every',
                     id='every-string'),
        pytest.param(_with(args='not a list'), 'args', id='args-string'),
        pytest.param(_with(args={'a': 1}), 'args', id='args-object'),
        pytest.param(_with(kwargs=[1]), 'kwargs', id='kwargs-list'),
        pytest.param(_with(enabled='yes'), 'enabled', id='enabled-string'),
        pytest.param(_with(schedule={'__type__': 'datetime', 'year': 2026, 'month': 1,
                                     'day': 1}), 'schedule', id='schedule-is-a-datetime'),
        pytest.param(_with(args=[{'__type__': 'datetime', 'year': 2026, 'month': 1, 'day': 1,
                                  'timezone': 'Mars/Olympus'}]), 'Mars/Olympus',
                     id='unknown-zone'),
    ],
)  # fmt: skip
def test_bad_definition_raises_definition_error_naming_key_and_problem(
    text: str, message: str
) -> None:
    with pytest.raises(DefinitionError) as caught:
        decode_definition('redbeat:broken', text)
    error = caught.value
    assert error.key == 'redbeat:broken'
    assert message in error.reason
    assert str(error).startswith('redbeat:broken: ')
    assert isinstance(error, ValueError)


def test_missing_definition_field() -> None:
    with pytest.raises(DefinitionError) as caught:
        decode_definition('redbeat:x', None)
    assert caught.value.key == 'redbeat:x'
    assert 'definition' in caught.value.reason


@pytest.mark.parametrize(
    'text',
    [
        '{"last_run_at": "yesterday", "total_run_count": 1}',
        '{"last_run_at": null, "total_run_count": "many"}',
        '[1]',
        '{not json',
    ],
)
def test_bad_meta_raises_definition_error(text: str) -> None:
    with pytest.raises(DefinitionError) as caught:
        decode_meta('redbeat:m', text)
    assert caught.value.key == 'redbeat:m'


# --- nothing but JSON ----------------------------------------------------------------


def test_pickle_typed_value_builds_nothing() -> None:
    payload = {
        '__type__': 'pickle',
        'data': 'gASVIAAAAAAAAACMBXBvc2l4lIwGc3lzdGVtlJOUjAJpZJSFlFKULg==',
    }
    fields = decode_definition(KEY, _with(args=[payload]))
    assert fields['args'] == [payload]
    assert type(fields['args'][0]) is dict
    with pytest.raises(DefinitionError, match="'pickle'"):
        decode_definition(KEY, _with(schedule=payload))


@pytest.mark.parametrize(
    'payload',
    [
        {'py/object': 'os.system', 'py/state': 'id'},
        {'py/reduce': [{'py/function': 'os.system'}, {'py/tuple': ['id']}]},
        {'__class__': 'subprocess.Popen', '__module__': 'subprocess', 'args': ['id']},
        {'__type__': 'subprocess.Popen', 'args': ['id']},
    ],
)
def test_object_payloads_stay_plain_data(payload: dict[str, Any]) -> None:
    fields = decode_definition(KEY, _with(kwargs={'x': payload}))
    assert fields['kwargs'] == {'x': payload}
    assert json.loads(json.dumps(payload), cls=RedBeatJSONDecoder) == payload
    with pytest.raises(DefinitionError):
        decode_definition(KEY, _with(schedule=payload))


def test_decoder_never_unpickles(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError('pickle was called')

    monkeypatch.setattr(pickle, 'loads', refuse)
    monkeypatch.setattr(pickle, 'load', refuse)
    monkeypatch.setattr(pickle, 'Unpickler', refuse)
    texts = [getattr(v2, name) for name in dir(v2) if name.endswith('_DEFINITION')]
    for text in texts:
        decode_definition(KEY, text)
        if '"schedule"' in text:  # the flat layout is only read through decode_definition
            json.loads(text, cls=RedBeatJSONDecoder)
    for text in (v2.META, v2.META_IANA, v2.META_OFFSET, v2.OLDEST_META):
        decode_meta(KEY, text)
        json.loads(text, cls=RedBeatJSONDecoder)


# --- the reader's fast path: one typed value, parsed without the object hook -----


def _canonical(value: Any) -> Any:
    """A comparable form of a decoded document: types, zones and key order included."""
    if isinstance(value, dict):
        return ('dict', [(k, _canonical(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ('list', [_canonical(v) for v in value])
    if isinstance(value, datetime):
        return ('datetime', value.isoformat(), repr(value.tzinfo))
    if isinstance(value, (schedule, crontab, rrule, weekday)) or hasattr(value, 'event'):
        return (type(value).__name__, json.dumps(value, cls=RedBeatJSONEncoder, sort_keys=True))
    return (type(value).__name__, repr(value))


def _outcome(read: Any) -> Any:
    try:
        return ('ok', _canonical(read()))
    except DefinitionError as exc:
        return ('error', exc.reason)


def _spellings(document: Any) -> st.SearchStrategy[str]:
    """JSON texts of ``document``: compact, spaced (celery-redbeat 2.x), escaped."""
    return st.sampled_from(
        [
            json.dumps(document, allow_nan=True, separators=(',', ':')),
            json.dumps(document, allow_nan=True),  # 2.x: ', ' and ': ', ASCII escapes
            json.dumps(document, allow_nan=True, ensure_ascii=False),
        ]
    )


@st.composite
def _tampered(draw: st.DrawFn, text: str) -> str:
    """``text``, sometimes with a key repeated, ``__type__`` escaped, or a BOM."""
    how = draw(st.sampled_from(['as is', 'repeat', 'escape', 'bom', 'cut']))
    if how == 'repeat' and text.startswith('{') and len(text) > 2:
        extra = draw(st.sampled_from([
            '"schedule": {"__type__": "interval", "every": -1}',
            '"schedule": {"__type__": "interval", "every": 5, "relative": false}',
            '"last_run_at": {"__type__": "datetime", "year": 99999}',
            '"last_run_at": null', '"args": [{"__type__": "weekday", "wkday": 9}]',
            '"kwargs": {"x": 1}', '"name": "other"',
        ]))  # fmt: skip
        return (
            '{' + extra + ', ' + text[1:] if draw(st.booleans()) else text[:-1] + ', ' + extra + '}'
        )
    if how == 'escape':
        return text.replace('"__type__"', '"\\u005f_type__"', 1)
    if how == 'bom':
        return '\ufeff' + text
    if how == 'cut':
        return text[: draw(st.integers(0, max(0, len(text) - 1)))]
    return text


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_definition_fast_path_reads_as_the_object_hook(data: st.DataObject) -> None:
    """Valid, near-valid and arbitrary definitions, in every spelling: the fast path
    returns what the per-object hook builds, or raises the same error."""
    from tests.fuzz.strategies import definitions

    document = data.draw(st.one_of(definitions(), st.builds(_valid_definition)), label='doc')
    text = data.draw(_spellings(document).flatmap(_tampered), label='text')
    fast = _outcome(lambda: parse(KEY, 'definition', text, _build_nested, 'schedule'))
    assert fast == _outcome(lambda: parse(KEY, 'definition', text, _build_nested))
    general = _outcome(lambda: _general_definition(text))
    assert _outcome(lambda: decode_definition(KEY, text)) == general
    # With schedules shared by their fields across all the examples, as beat's planner does
    assert _outcome(lambda: decode_definition(KEY, text, _SHARED)) == general


#: One cache of built schedules for every example (collisions are the point).
_SHARED: Built = {}


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_meta_fast_path_reads_as_the_object_hook(data: st.DataObject) -> None:
    from tests.fuzz.strategies import metas

    document = data.draw(st.one_of(metas(), st.builds(_valid_meta)), label='doc')
    text = data.draw(_spellings(document).flatmap(_tampered), label='text')
    fast = _outcome(lambda: parse(KEY, 'meta', text, _build, 'last_run_at'))
    assert fast == _outcome(lambda: parse(KEY, 'meta', text, _build))


def _valid_definition() -> dict[str, Any]:
    return json.loads(v2.INTERVAL_DEFINITION)


def _valid_meta() -> dict[str, Any]:
    return json.loads(v2.META)


def _general_definition(text: str) -> dict[str, Any]:
    """decode_definition with the fast path turned off."""
    from unittest import mock

    with mock.patch('redbeat.codec._one_typed', return_value=None):
        return decode_definition(KEY, text)


def test_fast_path_is_taken_for_the_common_forms() -> None:
    """What redbeat and celery-redbeat 2.x write: parsed in C, one value built."""
    calls: list[dict[str, Any]] = []
    texts = {
        'definition': [
            v2.INTERVAL_DEFINITION,
            v2.CRONTAB_DEFINITION,
            encode_definition({'name': 'n', 'task': 't', 'schedule': schedule(60), 'args': [1]}),
        ],
        'meta': [v2.META, v2.META_IANA, encode_meta(datetime(2026, 1, 1, tzinfo=UTC), 3)],
    }

    def hook(d: dict[str, Any]) -> Any:
        calls.append(d)
        return _build_nested(d)

    for field, documents in texts.items():
        member = 'schedule' if field == 'definition' else 'last_run_at'
        for text in documents:
            calls.clear()
            assert _one_typed(text, member, hook) is not None, text
            assert len(calls) == 1 and '__type__' in calls[0]


def test_planner_cache_gives_entries_alike_one_schedule() -> None:
    built: Built = {}
    texts = [
        encode_definition({'name': f'n{i}', 'task': 't', 'schedule': crontab(minute='*/5')})
        for i in range(3)
    ]
    first, *others = (decode_definition(KEY, text, built)['schedule'] for text in texts)
    assert all(other is first for other in others) and len(built) == 1
    assert first == crontab(minute='*/5')
    # 1 and 1.0 and true are equal in Python: the key has their types
    one = decode_definition(KEY, _with(schedule={'__type__': 'interval', 'every': 1}), built)
    flag = _with(schedule={'__type__': 'interval', 'every': True})
    with pytest.raises(DefinitionError, match='every'):
        decode_definition(KEY, flag, built)
    assert one['schedule'].run_every == timedelta(seconds=1)


def test_an_rrule_without_dtstart_is_never_shared() -> None:
    """dateutil starts such a rule when it is built: a shared one would keep the
    first entry's start for every later one (found by the property above)."""
    built: Built = {}
    clocked = '{"name":"a","task":"t","schedule":{"__type__":"rrule","freq":6},"args":[]}'
    started = (
        '{"name":"a","task":"t","schedule":{"__type__":"rrule","freq":6,'
        '"dtstart":1795847786,"dtstart_tz":0},"args":[]}'
    )
    first, again = (decode_definition(KEY, clocked, built)['schedule'] for _ in range(2))
    assert first is not again
    first, again = (decode_definition(KEY, started, built)['schedule'] for _ in range(2))
    assert first is again
