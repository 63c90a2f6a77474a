"""Rolling back to celery-redbeat 2.4.2: ``redbeat check --for-2x`` lists exactly the
entries the real 2.4.2 (from PyPI, in its own virtualenv) cannot run."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from celery import Celery
from celery.schedules import crontab, schedule, solar
from click.testing import CliRunner

from redbeat import RedBeatSchedulerEntry
from redbeat.cli import main
from redbeat.compat import unreadable_by_2x
from redbeat.schedules import rrule
from tests.compat.legacy import legacy_read

pytestmark = pytest.mark.timeout(600)  # the first run makes the 2.4.2 virtualenv


def test_check_for_2x_matches_the_real_2x_reader(
    celery_app: Celery, redis_client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    app = celery_app
    for name, sched in [
        ('interval', schedule(timedelta(minutes=5))),
        ('cron', crontab(minute='*/15', hour='9-17')),
        ('rule', rrule('DAILY', byhour=[7])),
        ('sunrise', solar('sunrise', 48.85, 2.35)),
    ]:
        RedBeatSchedulerEntry(name, 'proj.tasks.t', sched, app=app).save()
    RedBeatSchedulerEntry('off', 'proj.tasks.t', solar('sunset', 1, 2), app=app,
                          enabled=False).save()  # fmt: skip
    hand = {'name': 'hand', 'task': 'proj.tasks.t',
            'schedule': {'__type__': 'interval', 'every': 60}}  # fmt: skip
    redis_client.hset('redbeat:hand', 'definition', json.dumps(hand))
    redis_client.zadd('redbeat::schedule', {'redbeat:hand': 0})

    legacy = legacy_read(redis_url, tmp_path)
    # The reader loads every member; 2.4.2's beat loads only those due within
    # beat_max_loop_interval, so the disabled one (score -1) stops it only once enabled.
    failing = {name for name, error in legacy.items() if error}
    assert failing == {'sunrise', 'off', 'hand'}, legacy
    assert legacy['sunrise'] and 'AttributeError' in legacy['sunrise']
    assert legacy['hand'] and 'KeyError' in legacy['hand']

    result = CliRunner().invoke(main, ['--url', redis_url, 'check', '--for-2x'])
    assert result.exit_code == 1
    listed = {line.split()[1].rstrip(':') for line in result.output.splitlines()
              if line.startswith('2x-unreadable')}  # fmt: skip
    assert listed == failing
    assert 'harmless to 2.x until enabled' in next(
        line for line in result.output.splitlines() if ' off:' in line
    )
    assert '3 entries celery-redbeat 2.x cannot read' in result.output


def test_check_for_2x_ok(celery_app: Celery, redis_url: str) -> None:
    RedBeatSchedulerEntry('cron', 'proj.tasks.t', crontab(), app=celery_app).save()
    result = CliRunner().invoke(main, ['--url', redis_url, 'check', '--for-2x'])
    assert result.exit_code == 0 and 'ok: celery-redbeat 2.x can read every entry' in result.output


@pytest.mark.parametrize(
    ('definition', 'problem'),
    [
        ({'schedule': {'__type__': 'crontab', 'minute': '1'}}, None),
        ({'schedule': {'__type__': 'solar', 'event': 'dawn_civil', 'lat': 1, 'lon': 2}}, 'solar'),
        ({'schedule': {'__type__': 'interval', 'every': 5}}, 'relative'),
        ({'schedule': {'__type__': 'rrule', 'freq': 3, 'tzid': 'x'}}, 'tzid'),
        ({'__type__': 'interval', 'every': 5, 'relative': False}, 'flat layout'),
        (
            {
                'schedule': {'__type__': 'interval', 'every': 5, 'relative': False},
                'args': [{'__type__': 'mine'}],
            },
            None,
        ),
    ],
)
def test_unreadable_by_2x(definition: dict[str, object], problem: str | None) -> None:
    found = unreadable_by_2x(json.dumps({'name': 'n', 'task': 't', **definition}))
    assert (found is None) if problem is None else (problem in (found or ''))
