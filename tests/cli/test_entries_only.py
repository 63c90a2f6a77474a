"""``rm``, globs and names touch entries only: never redbeat's own keys, never other data.

An entry is a hash with a ``definition`` field, or a member of the schedule.
Everything else under the prefix (the schedule, statics, lock, history keys,
another application's hashes) is never matched, listed or deleted.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from celery.schedules import schedule
from click.testing import CliRunner, Result

from redbeat import RedBeatSchedulerEntry
from redbeat.api import Schedule
from redbeat.cli import main
from redbeat.errors import DefinitionError

SCHEDULE = 'redbeat::schedule'
INTERNAL = [':schedule', ':statics', ':lock', ':history:x', ':changes']


def invoke(redis_url: str, *args: str, prefix: str = 'redbeat:') -> Result:
    return CliRunner().invoke(main, ['--url', redis_url, '--prefix', prefix, *args])


@pytest.fixture
def redbeat_keys(redis_url: str, redis_client: redis.Redis) -> list[str]:
    """An entry, and every kind of key redbeat keeps beside it."""
    assert invoke(redis_url, 'add', 'x', 'proj.tasks.x', '--every', '1m').exit_code == 0
    redis_client.sadd('redbeat::statics', 'x')
    redis_client.set('redbeat::lock', 'holder')
    redis_client.lpush('redbeat::history:x', '{}')
    return sorted(str(k) for k in redis_client.keys('*'))


@pytest.mark.parametrize('name', INTERNAL)
def test_rm_refuses_redbeats_own_keys(
    redis_url: str, redis_client: redis.Redis, redbeat_keys: list[str], name: str
) -> None:
    result = invoke(redis_url, 'rm', '--yes', name, 'x')
    assert result.exit_code == 1
    assert f"redbeat:{name}: is redbeat's own key, not an entry" in result.output
    assert sorted(str(k) for k in redis_client.keys('*')) == redbeat_keys  # nothing deleted


@pytest.mark.parametrize('command', [['enable'], ['disable'], ['show'], ['edit', '--args', '[]'],
                                     ['add', 'proj.tasks.x', '--every', '1m']])  # fmt: skip
def test_every_command_refuses_an_internal_name(
    redis_url: str, redis_client: redis.Redis, redbeat_keys: list[str], command: list[str]
) -> None:
    result = invoke(redis_url, command[0], ':schedule', *command[1:])
    assert result.exit_code == 1, result.output
    assert "redbeat::schedule: is redbeat's own key" in result.output
    assert sorted(str(k) for k in redis_client.keys('*')) == redbeat_keys


def test_api_and_entry_save_refuse_internal_names_and_a_lock_key_under_the_prefix(
    celery_app: Celery,
) -> None:
    celery_app.conf.redbeat_lock_key = 'redbeat:beat-lock'  # a lock under the prefix
    api = Schedule(celery_app)
    for call in (lambda: api.get(':lock'), lambda: api.remove(':statics'),
                 lambda: api.add(':schedule', 'proj.tasks.x', 60)):  # fmt: skip
        with pytest.raises(DefinitionError, match='own key'):
            call()
    with pytest.raises(DefinitionError, match='nor name the lock key'):
        api.add('beat-lock', 'proj.tasks.x', 60)
    with pytest.raises(DefinitionError, match='nor name the lock key'):
        RedBeatSchedulerEntry('beat-lock', 'proj.tasks.x', schedule(60), app=celery_app).save()


def test_a_glob_with_a_shared_prefix_removes_entries_only(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """``myapp:`` holds redbeat's entries and the application's own data."""
    for name in ('a', 'b'):
        assert (
            invoke(redis_url, 'add', name, 'proj.t', '--every', '1m', prefix='myapp:').exit_code
            == 0
        )
    redis_client.hset('myapp:user:1', mapping={'name': 'bob'})
    redis_client.hset('myapp:session', mapping={'meta': '{}'})  # a field of ours, no definition
    redis_client.set('myapp:counter', 7)
    others = {'myapp:user:1', 'myapp:session', 'myapp:counter'}

    listing = invoke(redis_url, 'list', prefix='myapp:')
    assert [line.split()[0] for line in listing.output.splitlines()[1:]] == ['a', 'b']
    result = invoke(redis_url, 'rm', '--yes', '*', prefix='myapp:')
    assert result.exit_code == 0, result.output
    assert result.output == 'removed 2 entries: a, b\n'

    result = invoke(redis_url, 'rm', '--yes', 'user:1', 'counter', prefix='myapp:')
    assert result.exit_code == 1
    assert "no entry matches 'user:1'; no entry matches 'counter'" in result.output
    assert {str(k) for k in redis_client.keys('myapp:*')} == others


def test_rm_removes_what_matches_and_reports_the_rest_with_exit_code_1(
    redis_url: str, redis_client: redis.Redis
) -> None:
    assert invoke(redis_url, 'add', 'here', 'proj.t', '--every', '1m').exit_code == 0
    result = invoke(redis_url, 'rm', '--yes', 'here', 'missing', 'nothing.*')
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        'removed 1 entry: here',
        "Error: no entry matches 'missing'; no entry matches 'nothing.*'",
    ]
    assert not redis_client.exists('redbeat:here')


def test_beat_schedules_only_orphan_hashes_that_are_entries(
    redis_url: str,
    redis_client: redis.Redis,
    celery_app: Celery,
    make_scheduler: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A hash without a definition under the prefix is other data, not an orphan entry:
    not scheduled, not reported."""
    celery_app.conf.redbeat_lock_key = None
    assert invoke(redis_url, 'add', 'mine', 'proj.t', '--every', '1m').exit_code == 0
    redis_client.zrem(SCHEDULE, 'redbeat:mine')  # an orphan entry: scheduled at start-up
    redis_client.hset('redbeat:user:1', mapping={'name': 'bob'})
    make_scheduler(celery_app).tick()
    assert redis_client.zscore(SCHEDULE, 'redbeat:mine') is not None
    assert redis_client.zscore(SCHEDULE, 'redbeat:user:1') is None
    assert redis_client.hgetall('redbeat:user:1') == {'name': 'bob'}
    assert 'user:1' not in caplog.text


def console_block(path: Path, containing: str) -> list[tuple[list[str], list[str]]]:
    """The ``$ redbeat ...`` commands of the console block holding ``containing``,
    each with the lines it prints."""
    blocks = path.read_text(encoding='utf-8').split('.. code-block:: console')
    (block,) = [b for b in blocks[1:] if containing in b]
    lines = [line[3:] for line in block.split('\n\n')[1].splitlines()]
    steps: list[tuple[list[str], list[str]]] = []
    for line in lines:
        if line.startswith('$ '):
            steps.append((shlex.split(line[2:])[1:], []))
        else:
            steps[-1][1].append(line)
    return steps


def test_the_rm_example_of_the_docs_runs_as_shown(redis_url: str) -> None:
    steps = console_block(Path(__file__).parents[2] / 'docs' / 'cli.rst', 'rm --yes ping nosuch')
    assert len(steps) == 2
    for args, shown in steps:
        result = invoke(redis_url, *args)
        assert result.output.splitlines() == shown
    assert result.exit_code == 1
