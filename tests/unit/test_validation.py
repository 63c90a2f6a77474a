"""The limits of a valid entry (redbeat.validation) and the codec applying them: pure tables."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from dateutil import rrule as du

from redbeat import validation
from redbeat.codec import decode_definition, decode_meta
from redbeat.errors import DefinitionError
from redbeat.policy import Policy
from redbeat.schedules import rrule

UTC = timezone.utc
KEY = 'redbeat:x'


def definition(schedule: dict[str, Any], **fields: Any) -> str:
    return json.dumps({'name': 'x', 'task': 't', 'schedule': schedule, **fields})


def interval(every: str) -> str:
    return '{"name":"x","task":"t","schedule":{"__type__":"interval","every":' + every + '}}'


RULE = {'__type__': 'rrule', 'freq': 6, 'dtstart': 1_700_000_000}

REFUSED_DEFINITIONS = [
    (interval('Infinity'), 'Infinity'),
    (interval('-Infinity'), 'Infinity'),
    (interval('NaN'), 'NaN'),
    (interval('1e400'), 'out of range'),
    (interval('1e308'), 'interval every'),
    (interval('1e12'), 'interval every'),
    (interval('3153600001'), 'interval every'),
    (interval('1e-9'), 'interval every'),
    (interval('0.0009'), 'interval every'),
    (interval('1' + '0' * 400), 'interval every'),
    (interval('true'), 'interval every'),
    (definition({**RULE, 'dtstart': 1e20}), 'rrule dtstart'),
    (definition({**RULE, 'until': -1e20}), 'rrule until'),
    (definition({**RULE, 'dtstart_tz': 1e20}), 'dtstart_tz'),
    # Found by hypothesis: anything but a number reached dateutil's rule, which
    # raised AttributeError, naming nothing.
    (definition({**RULE, 'dtstart': []}), 'rrule dtstart must be a UNIX timestamp'),
    (definition({**RULE, 'dtstart': '2026-01-01T00:00:00'}), 'rrule dtstart must be'),
    (definition({**RULE, 'dtstart': True}), 'rrule dtstart must be'),
    (definition({**RULE, 'until': {}}), 'rrule until must be'),
    (definition({**RULE, 'interval': 0}), 'rrule interval'),
    (definition({**RULE, 'interval': -1}), 'rrule interval'),
    (definition({**RULE, 'count': 0}), 'rrule count'),
    (definition({**RULE, 'bysetpos': 2}), 'bysetpos'),
    (definition({'__type__': 'solar', 'event': 'sunrise', 'lat': float('nan'), 'lon': 0}), 'NaN'),
    (definition(RULE, args=[{'__type__': 'datetime'}]), 'datetime'),
    (definition(RULE, args=[{'__type__': 'datetime', 'year': 10**20, 'month': 1, 'day': 1}]),
     'datetime'),
    (definition(RULE, kwargs={'at': {'__type__': 'weekday', 'wkday': 10**100}}), 'weekday'),
    (definition(RULE, args=[{'__type__': 'datetime', 'year': 2026, 'month': 1, 'day': 1,
                             'timezone': 86400}]), 'timezone'),
    (definition(RULE, args=[{'__type__': 'datetime', 'year': 2026, 'month': 1, 'day': 1,
                             'timezone': 'x' * 5000}]), 'time zone'),
    (definition(RULE).replace('"task"', '"args": ' + '[' * 100_000 + ']' * 100_000 + ', "task"'),
     'nests deeper'),
    (definition(RULE, args=['x' * (1 << 20)]), 'bytes'),
]  # fmt: skip


@pytest.mark.parametrize(('text', 'reason'), REFUSED_DEFINITIONS)
def test_definition_refused_naming_the_field(text: str, reason: str) -> None:
    with pytest.raises(DefinitionError) as caught:
        decode_definition(KEY, text)
    assert caught.value.key == KEY
    assert reason in caught.value.reason


@pytest.mark.parametrize(
    ('text', 'reason'),
    [
        ('{"last_run_at": {"__type__": "datetime"}}', 'datetime'),
        ('{"last_run_at": {"__type__": "datetime", "year": 2026, "month": 1, "day": 1, '
         '"timezone": 1e20}}', 'timezone'),
        ('{"total_run_count": NaN}', 'NaN'),
        ('{"total_run_count": -1}', 'total_run_count'),
        ('[' * 5000 + ']' * 5000, 'nests deeper'),
    ],
)  # fmt: skip
def test_meta_refused_naming_the_field(text: str, reason: str) -> None:
    with pytest.raises(DefinitionError) as caught:
        decode_meta(KEY, text)
    assert reason in caught.value.reason


@pytest.mark.parametrize(
    ('text', 'reason'),
    [
        ('{"jitter": NaN}', 'NaN'),
        ('{"catchup_window": 1e300}', 'catchup_window'),
        ('{"jitter": -1}', 'jitter'),
        ('{"history": 1e400}', 'out of range'),
        ('{"max_runs": 99999999999999}', 'max_runs'),
        ('{"start_at": {"__type__": "datetime"}}', 'datetime'),
        ('{"timezone": "../../etc/passwd"}', 'timezone'),
    ],
)
def test_policy_refused_naming_the_field(text: str, reason: str) -> None:
    with pytest.raises(DefinitionError) as caught:
        Policy.from_json(KEY, text)
    assert reason in caught.value.reason


@pytest.mark.parametrize(
    'text',
    [
        interval('0.001'),
        interval('3153600000'),
        definition({**RULE, 'count': 1, 'bysetpos': -1}),
        definition({**RULE, 'freq': 3, 'byhour': [1, 2], 'bysetpos': 2}),
        definition(RULE, args=[[[[['nested', 'but', 'fine']]]]]),
    ],
)
def test_values_on_the_limits_are_accepted(text: str) -> None:
    assert decode_definition(KEY, text)['task'] == 't'


def test_depth_limit_is_exact() -> None:
    def nested(depth: int) -> str:  # the definition object itself is level 1
        return definition(RULE, args=json.loads('[' * (depth - 1) + ']' * (depth - 1)))

    decode_definition(KEY, nested(validation.MAX_DEPTH))
    with pytest.raises(DefinitionError, match='nests deeper'):
        decode_definition(KEY, nested(validation.MAX_DEPTH + 1))


def test_brackets_inside_strings_do_not_count() -> None:
    text = definition(RULE, args=['[' * 100, '{' * 100, '\\"['])
    assert decode_definition(KEY, text)['args'][0] == '[' * 100


# --- rrule searches are bounded -------------------------------------------------------

NOW = datetime(2026, 11, 28, 13, 7, 3, tzinfo=UTC)


@pytest.mark.parametrize(
    'fields',
    [
        {'freq': du.MINUTELY, 'interval': 13, 'byhour': [3, 4],
         'dtstart': datetime(2020, 3, 4, 5, 6, 7, tzinfo=UTC)},
        {'freq': du.HOURLY, 'interval': 5, 'byminute': [5, 35],
         'dtstart': datetime(2001, 3, 4, 5, 6, 7, tzinfo=UTC)},
        {'freq': du.DAILY, 'interval': 3, 'dtstart': datetime(1950, 3, 31, 9, tzinfo=UTC)},
        {'freq': du.WEEKLY, 'interval': 2, 'byweekday': [0, 4],
         'dtstart': datetime(1970, 1, 1, 6, tzinfo=UTC)},
    ],
)  # fmt: skip
@pytest.mark.parametrize('zone', [None, ZoneInfo('Europe/Paris')])
def test_search_near_the_moment_finds_dateutils_occurrences(
    fields: dict[str, Any], zone: Any
) -> None:
    """Started near the moment, a rule finds what dateutil finds walking from its start."""
    rule = rrule(**fields)
    start = fields['dtstart'] if zone is None else fields['dtstart'].astimezone(zone)
    reference = du.rrule(**{**fields, 'dtstart': start})
    moment = NOW
    for _ in range(4):
        found = rule.next_after(moment, zone)
        assert found == reference.after(moment.astimezone(zone) if zone else moment)
        moment = found + timedelta(hours=7)  # type: ignore[operator]


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ('freq', 'step'),
    [(du.SECONDLY, timedelta(seconds=7)), (du.MINUTELY, timedelta(minutes=7))],
)
def test_rule_started_centuries_ago_is_found_on_its_grid(freq: int, step: timedelta) -> None:
    """dateutil alone walks every occurrence since the start (billions of steps)."""
    start = datetime(1, 1, 1, tzinfo=UTC)
    found = rrule(freq, interval=7, dtstart=start).next_after(NOW)
    assert found is not None and NOW < found <= NOW + step
    assert (found - start) % step == timedelta(0)


@pytest.mark.parametrize(
    'fields',
    [
        {'freq': du.SECONDLY, 'bymonth': 2, 'bymonthday': 30},
        {'freq': du.HOURLY, 'byweekno': 53, 'byweekday': 0, 'bymonth': 1},
        {'freq': du.DAILY, 'bymonth': 4, 'bymonthday': 31},
    ],
)
def test_rule_no_day_can_match_has_no_occurrence(fields: dict[str, Any]) -> None:
    rule = rrule(dtstart=datetime(2026, 1, 1, tzinfo=UTC), **fields)
    assert rule.next_after(NOW) is None
    assert rule.next_after(NOW + timedelta(days=400)) is None  # answered from the probe's cache


@pytest.mark.timeout(30)
def test_rare_day_is_found() -> None:
    rule = rrule(du.SECONDLY, dtstart=datetime(2026, 1, 1, tzinfo=UTC), bymonth=2,
                 bymonthday=29, byweekday=0)  # fmt: skip
    assert rule.next_after(NOW) == datetime(2044, 2, 29, tzinfo=UTC)


@pytest.mark.parametrize(
    ('freq', 'fields'),
    [
        (du.SECONDLY, {'bysetpos': 2}),
        (du.HOURLY, {'bysetpos': 30}),
        (du.MINUTELY, {'byhour': [3], 'bysetpos': 2}),
        (du.WEEKLY, {'bysetpos': 2}),
        (du.WEEKLY, {'byweekday': [0, 1], 'bysetpos': 3}),
        (du.MONTHLY, {'bymonthday': [1], 'byhour': [1, 2], 'bysetpos': [1, 63]}),
    ],
)
def test_set_position_no_period_holds_is_refused(freq: int, fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match='bysetpos'):
        rrule(freq, **fields)


def test_timestamps_and_offsets_keep_datetime_in_range() -> None:
    lowest = datetime.fromtimestamp(validation.MIN_TIMESTAMP, tz=timezone(timedelta(hours=-23)))
    highest = datetime.fromtimestamp(validation.MAX_TIMESTAMP, tz=timezone(timedelta(hours=23)))
    assert lowest.year == 1 and highest.year == 9999
    assert time.gmtime(0).tm_year == 1970  # UNIX seconds, as stored


@pytest.mark.parametrize(
    'fields',
    [
        {'freq': du.MINUTELY, 'interval': 7, 'count': 40_000,
         'dtstart': datetime(2026, 9, 1, tzinfo=UTC)},
        {'freq': du.HOURLY, 'interval': 3, 'count': 5000,
         'dtstart': datetime(2025, 1, 1, 5, 6, 7, tzinfo=UTC)},
        {'freq': du.DAILY, 'count': 400, 'dtstart': datetime(2026, 1, 1, 9, tzinfo=UTC)},
        {'freq': du.SECONDLY, 'count': 100, 'dtstart': datetime(2026, 1, 1, 9, tzinfo=UTC)},
        {'freq': du.WEEKLY, 'count': 60, 'dtstart': datetime(2026, 1, 1, 9, tzinfo=UTC)},
    ],
)  # fmt: skip
@pytest.mark.parametrize('zone', [None, ZoneInfo('America/New_York')])
def test_counted_rule_started_near_the_moment_keeps_its_count(
    fields: dict[str, Any], zone: Any
) -> None:
    rule = rrule(**fields)
    start = fields['dtstart'] if zone is None else fields['dtstart'].astimezone(zone)
    reference = du.rrule(**{**fields, 'dtstart': start})
    moment = NOW
    for _ in range(4):
        found = rule.next_after(moment, zone)
        assert found == reference.after(moment.astimezone(zone) if zone else moment)
        if found is None:
            break
        moment = found + timedelta(hours=5)


@pytest.mark.parametrize(
    ('fields', 'field'),
    [
        ({'count': validation.MAX_RULE_COUNT + 1}, 'rrule count'),
        ({'interval': validation.MAX_RULE_INTERVAL + 1}, 'rrule interval'),
    ],
)
def test_rule_numbers_above_their_limits_are_refused(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        rrule(du.SECONDLY, **fields)


@pytest.mark.parametrize('field', ['dtstart', 'until'])
def test_rrule_made_in_python_refuses_a_start_or_end_that_is_not_a_datetime(field: str) -> None:
    with pytest.raises(TypeError, match=f'{field} must be a datetime'):
        rrule('DAILY', **{field: '2026-01-01'})
