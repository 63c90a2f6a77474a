"""Importing a redisbeat schedule: written by the real redisbeat package (1.2.6, from
PyPI), read by ``redbeat import`` as JSON only, never unpickled.

redisbeat's ``RedisScheduler.add`` writes each entry as a jsonpickle text into
its sorted set.  Its constructor starts a Celery scheduler (and, on Python
3.9+, cannot decode what it wrote: jsonpickle restores the zone with
``ZoneInfo._unpickle``), so the tests call its ``add`` on an instance given
only what ``add`` uses: the Redis client and the key.
"""

from __future__ import annotations

import json
import pickle
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from celery.schedules import crontab
from click.testing import CliRunner, Result
from redisbeat.scheduler import RedisScheduler

from redbeat.cli import main
from redbeat.redisbeat_import import DEFAULT_KEY, read_member

KEY = DEFAULT_KEY


def redisbeat_add(app: Celery, url: str, **entry: Any) -> None:
    """redisbeat's own writer: ``RedisScheduler(app=app).add(**entry)``."""
    scheduler = RedisScheduler.__new__(RedisScheduler)
    scheduler.rdb = redis.StrictRedis.from_url(url)
    scheduler.key = KEY
    with app:  # redisbeat's add builds the entry on current_app
        scheduler.add(**entry)


def cli(redis_url: str, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, ['--url', redis_url, *args], input=input)


def test_import_from_the_redisbeat_key(
    celery_app: Celery, redis_url: str, redis_client: redis.Redis
) -> None:
    redisbeat_add(celery_app, redis_url, name='sub-perminute', task='tasks.sub',
                  schedule=timedelta(seconds=3), args=(1, 1))  # fmt: skip
    redisbeat_add(celery_app, redis_url, name='nightly', task='tasks.report',
                  schedule=crontab(hour=3, minute=0), kwargs={'dept': 'ops'},
                  options={'queue': 'reports'})  # fmt: skip

    planned = cli(redis_url, 'import', '--redisbeat-key', KEY, '--dry-run')
    assert planned.exit_code == 0, planned.output
    assert '+ nightly' in planned.output and '+ sub-perminute' in planned.output
    assert not redis_client.exists('redbeat:nightly')

    done = cli(redis_url, 'import', '--redisbeat-key', KEY)
    assert done.exit_code == 0, done.output
    assert 'imported: 2 written, 0 removed' in done.output
    sub = json.loads(redis_client.hget('redbeat:sub-perminute', 'definition') or '{}')
    assert sub['task'] == 'tasks.sub' and sub['args'] == [1, 1]
    assert sub['schedule'] == {'__type__': 'interval', 'every': 3.0, 'relative': False}
    nightly = json.loads(redis_client.hget('redbeat:nightly', 'definition') or '{}')
    # stored compact: the crontab fields that are '*' are left out
    assert nightly['schedule'] == {'__type__': 'crontab', 'minute': '0', 'hour': '3'}
    assert nightly['kwargs'] == {'dept': 'ops'} and nightly['options'] == {'queue': 'reports'}
    assert redis_client.zscore('redbeat::schedule', 'redbeat:nightly') is not None
    # redisbeat's own data is left as it was (a rollback stays possible).
    assert redis_client.zcard(KEY) == 2


def test_import_from_a_file_of_members(
    celery_app: Celery, redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    redisbeat_add(celery_app, redis_url, name='ping', task='tasks.ping',
                  schedule=timedelta(minutes=5))  # fmt: skip
    dump = tmp_path / 'redisbeat.txt'
    dump.write_text('\n'.join(redis_client.zrange(KEY, 0, -1)) + '\n')
    result = cli(redis_url, 'import', '--format', 'redisbeat', str(dump))
    assert result.exit_code == 0, result.output
    assert redis_client.exists('redbeat:ping')


def test_values_only_jsonpickle_could_rebuild_are_named_and_nothing_is_written(
    celery_app: Celery, redis_url: str, redis_client: redis.Redis
) -> None:
    redisbeat_add(celery_app, redis_url, name='fine', task='tasks.ok', schedule=timedelta(1))
    redisbeat_add(celery_app, redis_url, name='dated', task='tasks.d', schedule=timedelta(1),
                  args=(datetime(2026, 1, 1),))  # fmt: skip
    result = cli(redis_url, 'import', '--redisbeat-key', KEY)
    assert result.exit_code == 1
    assert '(dated): args holds a pickled datetime.datetime (py/object)' in result.output
    assert 'never pickle' in result.output
    assert not redis_client.exists('redbeat:fine')


def test_a_code_running_member_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / 'ran'
    hostile = {
        'py/reduce': [
            {'py/type': 'celery.beat.ScheduleEntry'},
            {'py/tuple': ['x', 't', None, 0,
                          {'py/reduce': [{'py/function': 'os.system'},
                                         {'py/tuple': [f'touch {marker}']}]},
                          [], {}, {}]},
        ]
    }  # fmt: skip
    member = read_member(1, json.dumps(hostile))
    assert member.item is None
    assert member.error is not None and 'the schedule is a pickled os.system' in member.error
    assert not marker.exists()


def test_binary_pickle_members_are_refused(redis_url: str, redis_client: redis.Redis) -> None:
    redis_client.zadd(KEY, {pickle.dumps({'name': 'x'}): 0})  # type: ignore[dict-item]
    result = cli(redis_url, 'import', '--redisbeat-key', KEY)
    assert result.exit_code == 1
    assert 'binary members (Python pickle?)' in result.output


@pytest.mark.parametrize(
    ('args', 'message'),
    [
        ([], 'give FILE or --redisbeat-key'),
        (['x.json', '--redisbeat-key', KEY], 'give FILE or --redisbeat-key'),
        (['--redisbeat-key', KEY, '--format', 'json'], 'leave out --format'),
    ],
)
def test_usage(redis_url: str, tmp_path: Path, args: list[str], message: str,
               monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'x.json').write_text('{}')
    result = cli(redis_url, 'import', *args)
    assert result.exit_code == 2 and message in result.output
