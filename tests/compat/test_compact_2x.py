"""The compact stored form: what redbeat writes, and the real celery-redbeat 2.4.2
(from PyPI, in its own virtualenv) loading it to the very entries that were saved.

Fields at the value both readers assume when one is absent are left out of
what is stored (``kwargs``/``options`` when empty, ``enabled`` when true, a
crontab field ``*``, a datetime's zero time fields and ``UTC`` zone, an
rrule's unset fields, a run count of 0).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis
from celery import Celery
from celery.schedules import crontab, schedule
from dateutil import rrule as du

from redbeat import RedBeatSchedulerEntry
from redbeat.schedules import rrule
from tests.compat.legacy import legacy_run
from tests.compat.plain import entry_fields

pytestmark = pytest.mark.timeout(600)  # the first run makes the 2.4.2 virtualenv

UTC = timezone.utc
PARIS = ZoneInfo('Europe/Paris')
RAN = datetime(2026, 11, 28, 4, 25, 23, 515375, tzinfo=UTC)
MIDNIGHT = datetime(2026, 11, 28, tzinfo=UTC)

#: name -> (schedule, args, kwargs, options, enabled, last_run_at, total_run_count)
ENTRIES: dict[str, tuple[Any, ...]] = {
    'hourly': (schedule(timedelta(hours=1)), [0], {}, {}, True, RAN, 1),
    'relative-off': (schedule(timedelta(minutes=90), relative=True), [], {'a': 1},
                     {'queue': 'q'}, False, RAN, 7),
    'half-second': (schedule(timedelta(seconds=0.5)), ['x'], {}, {}, True, MIDNIGHT, 0),
    'nightly': (crontab(minute=0, hour=3), [], {}, {'queue': 'reports'}, True, MIDNIGHT, 2),
    'every-minute': (crontab(), [], {}, {}, True, RAN, 0),
    'weekly-rule': (rrule(du.WEEKLY, dtstart=datetime(2026, 1, 1, 9, tzinfo=UTC),
                          byweekday=[du.MO, du.FR], count=10), [], {}, {}, True, RAN, 3),
    'offset-rule': (rrule(du.DAILY, dtstart=datetime(2026, 1, 1, 9, tzinfo=timezone(
        timedelta(hours=2))), until=datetime(2027, 2, 1, tzinfo=UTC), byhour=[9, 17]),
        [], {}, {}, True, RAN, 1),
    'dated-args': (schedule(timedelta(minutes=5)),
                   [MIDNIGHT, datetime(2026, 7, 14, 12, tzinfo=PARIS)],
                   {'at': datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=-5)))},
                   {}, True, datetime(2026, 3, 1, 12, tzinfo=PARIS), 4),
}  # fmt: skip


def save_all(app: Celery) -> None:
    for name, (sched, args, kwargs, options, enabled, ran, count) in ENTRIES.items():
        RedBeatSchedulerEntry(name, f'proj.tasks.{name}', sched, args=args, kwargs=kwargs,
                              options=options, enabled=enabled, app=app, last_run_at=ran,
                              total_run_count=count).save()  # fmt: skip


def expected(name: str) -> dict[str, Any]:
    sched, args, kwargs, options, enabled, ran, count = ENTRIES[name]
    entry = RedBeatSchedulerEntry(name, f'proj.tasks.{name}', sched, args=args, kwargs=kwargs,
                                  options=options, enabled=enabled, last_run_at=ran,
                                  total_run_count=count)  # fmt: skip
    return entry_fields(entry)


def test_what_is_stored_is_the_compact_form(celery_app: Celery, redis_client: redis.Redis) -> None:
    save_all(celery_app)

    def stored(name: str, field: str) -> str:
        return str(redis_client.hget(f'redbeat:{name}', field))

    assert stored('hourly', 'definition') == (
        '{"name":"hourly","task":"proj.tasks.hourly",'
        '"schedule":{"__type__":"interval","every":3600,"relative":false},"args":[0]}'
    )
    assert stored('hourly', 'meta') == (
        '{"last_run_at":{"__type__":"datetime","year":2026,"month":11,"day":28,'
        '"hour":4,"minute":25,"second":23,"microsecond":515375},"total_run_count":1}'
    )
    assert stored('relative-off', 'definition') == (
        '{"name":"relative-off","task":"proj.tasks.relative-off",'
        '"schedule":{"__type__":"interval","every":5400,"relative":true},"args":[],'
        '"kwargs":{"a":1},"options":{"queue":"q"},"enabled":false}'
    )
    assert stored('nightly', 'definition') == (
        '{"name":"nightly","task":"proj.tasks.nightly",'
        '"schedule":{"__type__":"crontab","minute":"0","hour":"3"},"args":[],'
        '"options":{"queue":"reports"}}'
    )
    assert stored('nightly', 'meta') == (
        '{"last_run_at":{"__type__":"datetime","year":2026,"month":11,"day":28},'
        '"total_run_count":2}'
    )
    assert stored('half-second', 'meta') == (
        '{"last_run_at":{"__type__":"datetime","year":2026,"month":11,"day":28}}'
    )
    assert json.loads(stored('every-minute', 'definition'))['schedule'] == {'__type__': 'crontab'}
    assert json.loads(stored('weekly-rule', 'definition'))['schedule'] == {
        '__type__': 'rrule', 'freq': du.WEEKLY, 'count': 10,
        'byweekday': [{'__type__': 'weekday', 'wkday': 0}, {'__type__': 'weekday', 'wkday': 4}],
        'dtstart': 1767258000,
    }  # fmt: skip
    assert json.loads(stored('dated-args', 'meta'))['last_run_at'] == {
        '__type__': 'datetime', 'year': 2026, 'month': 3, 'day': 1, 'hour': 12,
        'timezone': 'Europe/Paris',
    }  # fmt: skip


def test_real_2x_loads_the_compact_form_to_the_saved_entries(
    celery_app: Celery, redis_url: str, tmp_path: Path
) -> None:
    save_all(celery_app)
    legacy = json.loads(legacy_run('legacy_entries.py', redis_url, tmp_path).splitlines()[-1])
    assert set(legacy) == set(ENTRIES)
    for name in ENTRIES:
        ours = entry_fields(RedBeatSchedulerEntry.from_key(f'redbeat:{name}', app=celery_app))
        assert legacy[name] == expected(name), name
        assert ours == expected(name), name
