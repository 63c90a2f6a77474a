"""The ``redbeat`` commands, driven with click's CliRunner against a real Redis.

Each test asserts on what the command printed and on what it left in Redis.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

import pytest
import redis
from celery import Celery
from click.testing import CliRunner, Result

from redbeat.cli import main

SCHEDULE = 'redbeat::schedule'


class Invoke(Protocol):
    def __call__(self, *args: str, input: str | None = None) -> Result: ...


@pytest.fixture
def run(redis_url: str) -> Invoke:
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(main, ['--url', redis_url, *args], input=input)

    return invoke


def _definition(client: redis.Redis, name: str) -> dict[str, object]:
    return dict(json.loads(client.hget(f'redbeat:{name}', 'definition') or 'null'))


def test_add_every_and_list(run: Invoke, redis_client: redis.Redis) -> None:
    result = run('add', 'ping', 'proj.tasks.ping', '--every', '5m', '--args', '[1, "a"]',
                 '--kwargs', '{"k": 2}', '--queue', 'fast')  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output == 'saved ping: proj.tasks.ping every 5 min\n'
    stored = _definition(redis_client, 'ping')
    assert stored['schedule'] == {'__type__': 'interval', 'every': 300.0, 'relative': False}
    assert (stored['args'], stored['kwargs'], stored['options']) == (
        [1, 'a'],
        {'k': 2},
        {'queue': 'fast'},
    )
    assert redis_client.zscore(SCHEDULE, 'redbeat:ping') is not None

    listing = run('list')
    assert listing.exit_code == 0
    header, row = listing.output.splitlines()
    assert header.split() == [
        'NAME',
        'TASK',
        'SCHEDULE',
        'ZONE',
        'ENABLED',
        'NEXT',
        'RUN',
        'LAST',
        'RUN',
        'RUNS',
    ]
    assert row.startswith('ping  ')
    assert row.split()[5] == '-'  # an interval has no wall time: no zone
    assert 'every 5 min' in row and 'in 4 min' in row and 'UTC)' in row
    assert row.split()[-2:] == ['-', '0']
    assert '\x1b[' not in listing.output  # no colours off a terminal


def test_add_cron_rrule_at(run: Invoke, redis_client: redis.Redis) -> None:
    assert run('add', 'nightly', 'proj.report', '--cron', '0 3 * * 1').exit_code == 0
    schedule = {'__type__': 'crontab', 'minute': '0', 'hour': '3', 'day_of_week': '1'}
    assert _definition(redis_client, 'nightly')['schedule'] == schedule  # '*' fields left out
    result = run('add', 'daily', 'proj.d', '--rrule', 'FREQ=DAILY;BYHOUR=3')
    assert result.output == 'saved daily: proj.d rrule FREQ=DAILY;BYHOUR=3\n'
    rule = _definition(redis_client, 'daily')['schedule']
    assert isinstance(rule, dict) and rule['byhour'] == [3] and rule['dtstart'] % 86400 == 0
    result = run('add', 'once', 'proj.o', '--at', '2099-01-01T09:00', '--tz', 'Europe/Paris')
    # shown in the entry's zone (--tz is its time zone), stored in UTC
    assert result.output == 'saved once: proj.o once at 2099-01-01 09:00:00 CET\n'
    assert redis_client.zscore(SCHEDULE, 'redbeat:once') == 4070937600.0
    listing = run('list').output
    assert 'at 03:00 Mon' in listing and 'once at 2099-01-01 09:00:00 CET' in listing


@pytest.mark.parametrize(
    ('args', 'code', 'message'),
    [
        (['x', 'bad task!', '--every', '5s'], 1, "task 'bad task!' is not a task name"),
        (['x', 't', '--cron', '61 * * * *'], 1, 'is not a valid crontab'),
        (['x', 't', '--cron', '* * *'], 1, 'needs 5 fields'),
        (['x', 't', '--every', 'soon'], 1, 'is not a duration'),
        (['x', 't', '--every', '5s', '--args', '{'], 1, '--args is not valid JSON'),
        (['x', 't', '--every', '5s', '--args', '{}'], 1, '--args must be a JSON list'),
        (['x', 't', '--every', '5s', '--kwargs', '[]'], 1, '--kwargs must be a JSON object'),
        (['x', 't', '--rrule', 'FREQ=SOMETIMES'], 1, 'is not a valid rule'),
        (['x', 't', '--at', '2001-01-01T00:00'], 1, 'is in the past'),
        (['x', 't', '--at', 'tomorrow'], 1, 'is not a date and time'),
        (
            ['x', 't', '--at', '2099-01-01T00:00', '--tz', 'Mars/Olympus'],
            1,
            'not a known time zone',
        ),
        (['x', 't', '--every', '5s', '--cron', '* * * * *'], 2, 'give one schedule'),
        (['x', 't'], 2, 'give a schedule'),
        (['x', 't', '--cron', '* * * * *', '--tz', 'Europe/Pariss'], 1, "--tz 'Europe/Pariss'"),
    ],
)
def test_add_rejects_bad_input_and_writes_nothing(
    run: Invoke, redis_client: redis.Redis, args: list[str], code: int, message: str
) -> None:
    result = run('add', *args)
    assert result.exit_code == code
    assert message in result.output
    assert redis_client.keys('*') == []


def test_edit_changes_only_given_fields(run: Invoke, redis_client: redis.Redis) -> None:
    run('add', 'e', 'proj.e', '--every', '1m', '--args', '[1]', '--queue', 'q')
    redis_client.hset('redbeat:e', 'meta', json.dumps({'last_run_at': None, 'total_run_count': 4}))
    result = run('edit', 'e', '--cron', '*/5 * * * *', '--disabled')
    assert result.exit_code == 0, result.output
    stored = _definition(redis_client, 'e')
    assert stored['args'] == [1] and stored['options'] == {'queue': 'q'}
    assert stored['enabled'] is False and stored['schedule']['minute'] == '*/5'  # type: ignore[index]
    assert redis_client.zscore(SCHEDULE, 'redbeat:e') == -1
    assert json.loads(redis_client.hget('redbeat:e', 'meta') or '')['total_run_count'] == 4
    assert run('edit', 'missing', '--every', '1m').exit_code == 1


def test_show(run: Invoke, redis_client: redis.Redis) -> None:
    run('add', 'nightly', 'proj.report', '--cron', '0 3 * * *', '--queue', 'reports')
    result = run('show', 'nightly')
    assert result.exit_code == 0
    lines = dict(line.split(':', 1) for line in result.output.splitlines())
    assert lines['task'].strip() == 'proj.report'
    assert lines['schedule'].strip().startswith('at 03:00')
    assert lines['last run'].strip() == 'never'
    assert json.loads(lines['definition'])['options'] == {'queue': 'reports'}
    assert 'total_run_count' not in json.loads(lines['meta'])  # 0: left out
    shown = json.loads(run('show', 'nightly', '--json').output)
    assert shown['definition'] == redis_client.hget('redbeat:nightly', 'definition')
    missing = run('show', 'nope')
    assert missing.exit_code == 1 and 'redbeat:nope: no such entry' in missing.output


def test_list_json_filters_and_bad_entries(run: Invoke, redis_client: redis.Redis) -> None:
    run('add', 'a', 'proj.a', '--every', '1m')
    run('add', 'b', 'proj.b', '--every', '1m', '--disabled')
    redis_client.hset('redbeat:bad', 'definition', '{oops')
    redis_client.zadd(SCHEDULE, {'redbeat:bad': 0})
    rows = json.loads(run('list', '--json').output)
    assert [r['name'] for r in rows] == ['a', 'b', 'bad']
    assert rows[0]['schedule'] == {'__type__': 'interval', 'every': 60.0, 'relative': False}
    assert rows[0]['schedule_text'] == 'every 1 min'
    assert 'not valid JSON' in rows[2]['error']
    assert [r['name'] for r in json.loads(run('list', '--json', '--disabled').output)] == [
        'b',
        'bad',
    ]
    assert [r['name'] for r in json.loads(run('list', '--json', '--task', 'proj.a').output)] == [
        'a',
        'bad',
    ]
    table = run('list', '--pattern', 'ba*').output
    assert 'ERROR: definition is not valid JSON' in table and '\na ' not in table


def test_rm(run: Invoke, redis_client: redis.Redis) -> None:
    for name in ('r.1', 'r.2', 'keep'):
        run('add', name, 'proj.r', '--every', '1m')
    refused = run('rm', 'r.*')  # CliRunner's stdin is not a terminal
    assert refused.exit_code == 2 and '2 entries match; pass --yes' in refused.output
    assert redis_client.zcard(SCHEDULE) == 3
    result = run('rm', 'r.*', '--yes')
    assert result.exit_code == 0 and result.output == 'removed 2 entries: r.1, r.2\n'
    assert redis_client.zrange(SCHEDULE, 0, -1) == ['redbeat:keep']
    assert not redis_client.exists('redbeat:r.1')
    assert run('rm', 'keep').output == 'removed 1 entry: keep\n'
    assert run('rm', 'keep').exit_code == 1
    assert run('rm', 'zz*').exit_code == 1
    assert run('rm').exit_code == 2


def test_enable_disable(run: Invoke, redis_client: redis.Redis) -> None:
    run('add', 'p', 'proj.p', '--every', '1m')
    assert run('disable', 'p').output == 'disabled p\n'
    assert redis_client.zscore(SCHEDULE, 'redbeat:p') == -1
    assert _definition(redis_client, 'p')['enabled'] is False
    assert run('enable', 'p').output == 'enabled p\n'
    assert (redis_client.zscore(SCHEDULE, 'redbeat:p') or 0) > 0
    assert run('enable', 'nope').exit_code == 1


def test_export_import_round_trip(run: Invoke, redis_client: redis.Redis, tmp_path: Path) -> None:
    run('add', 'a', 'proj.a', '--every', '30s', '--args', '[1]')
    run('add', 'b', 'proj.b', '--cron', '0 3 * * *', '--disabled')
    for fmt in ('json', 'yaml'):
        path = tmp_path / f'schedule.{fmt}'
        assert run('export', '--format', fmt, '-o', str(path)).exit_code == 0
    document = json.loads((tmp_path / 'schedule.json').read_text())
    assert set(document) == {'a', 'b'}
    assert document['a'] == {
        'task': 'proj.a', 'schedule': {'__type__': 'interval', 'every': 30.0, 'relative': False},
        'args': [1], 'kwargs': {}, 'options': {}, 'enabled': True,
    }  # fmt: skip
    stdout = run('export').output
    assert json.loads(stdout) == document

    redis_client.flushdb()
    run('add', 'extra', 'proj.x', '--every', '1m')
    dry = run('import', str(tmp_path / 'schedule.yaml'), '--prune', '--dry-run')
    assert dry.exit_code == 0
    assert dry.output.splitlines() == [
        '+ a',
        '+ b',
        '- extra',
        'dry run: 2 to write, 1 to remove; nothing written',
    ]
    assert redis_client.zrange(SCHEDULE, 0, -1) == ['redbeat:extra']
    result = run('import', str(tmp_path / 'schedule.yaml'), '--prune')
    assert result.output.splitlines()[-1] == 'imported: 2 written, 1 removed'
    assert sorted(redis_client.zrange(SCHEDULE, 0, -1)) == ['redbeat:a', 'redbeat:b']
    assert redis_client.zscore(SCHEDULE, 'redbeat:b') == -1
    assert json.loads(run('export').output) == document
    again = run('import', str(tmp_path / 'schedule.json'))
    assert again.output.splitlines() == ['= a', '= b', 'imported: 0 written, 0 removed']


def test_import_validates_everything_first(
    run: Invoke, redis_client: redis.Redis, tmp_path: Path
) -> None:
    path = tmp_path / 'bad.json'
    path.write_text(json.dumps({
        'good': {'task': 'proj.g', 'schedule': 60},
        'bad': {'task': 'proj.b', 'schedule': {'__type__': 'crontab', 'minute': '99'}},
    }))  # fmt: skip
    result = run('import', str(path))
    assert result.exit_code == 1 and 'nothing imported' in result.output and 'bad' in result.output
    assert redis_client.keys('*') == []
    path.write_text('[1, 2]')
    assert run('import', str(path)).exit_code == 1


def test_status(run: Invoke, redis_client: redis.Redis, redis_url: str) -> None:
    run('add', 'later', 'proj.l', '--every', '1h')
    redis_client.zadd(SCHEDULE, {'redbeat:due': 0})
    free = run('status').output
    assert 'redbeat::lock is free' in free
    redis_client.set('redbeat::lock', 'beat-host:42:abc', px=9000)
    lines = run('status').output.splitlines()
    assert lines[0] == f'redis:     {redis_url} (prefix redbeat:)'
    assert lines[1].startswith('lock:      redbeat::lock held by beat-host:42:abc (expires in ')
    assert lines[2] == 'entries:   2 (1 due, 0 overdue)'
    assert lines[3:6] == ['next due:', '  due    due now', lines[5]]
    assert lines[5].startswith('  later  in 59 min')
    assert lines[6] == 'eviction:  ok (maxmemory-policy noeviction)'
    data = json.loads(run('status', '--json').output)
    assert data['lock_holder'] == 'beat-host:42:abc' and data['entries'] == 2


def test_status_warns_about_eviction(run: Invoke, redis_client: redis.Redis) -> None:
    redis_client.config_set('maxmemory-policy', 'allkeys-lru')
    redis_client.config_set('maxmemory', '100mb')
    try:
        assert 'WARNING maxmemory-policy allkeys-lru' in run('status').output
    finally:
        redis_client.config_set('maxmemory-policy', 'noeviction')
        redis_client.config_set('maxmemory', '0')


def test_check_and_fix(run: Invoke, redis_client: redis.Redis) -> None:
    assert run('check').output == 'ok: no problems found\n'
    run('add', 'off', 'proj.o', '--every', '1m', '--disabled')
    redis_client.zadd(SCHEDULE, {'redbeat:off': 5, 'redbeat:ghost': 0})
    redis_client.hset('redbeat:bad', 'definition', '{')
    result = run('check')
    assert result.exit_code == 1
    assert 'dangling-member       ghost: in the schedule but has no hash [fixable]' in result.output
    assert 'stale-disabled-score  off: ' in result.output
    assert 'malformed             bad: ' in result.output
    assert result.output.endswith('Error: 4 problems; run check --fix\n')
    fixed = run('check', '--fix')
    assert 'fixed 2 of 4 problems' in fixed.output and fixed.exit_code == 1
    assert redis_client.zscore(SCHEDULE, 'redbeat:off') == -1
    assert redis_client.zscore(SCHEDULE, 'redbeat:ghost') is None
    assert redis_client.hget('redbeat:bad', 'definition') == '{'


def test_location_options(redis_url: str, redis_client: redis.Redis) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ['list'], env={'REDBEAT_REDIS_URL': None})
    assert result.exit_code == 2 and 'say where the schedule is' in result.output
    env = {'REDBEAT_REDIS_URL': redis_url, 'REDBEAT_KEY_PREFIX': '{rb}:'}
    assert runner.invoke(main, ['add', 'n', 'proj.n', '--every', '1m'], env=env).exit_code == 0
    assert redis_client.zrange('{rb}::schedule', 0, -1) == ['{rb}:n']
    bad = runner.invoke(main, ['--url', 'http://example.com', 'list'])
    assert bad.exit_code == 2 and 'is not a Redis URL' in bad.output


def test_passwords_are_never_printed(redis_server: object) -> None:
    port = redis_server.port  # type: ignore[attr-defined]
    url = f'redis://:s3cret@127.0.0.1:{port}/0'  # the test server takes any password
    result = CliRunner().invoke(main, ['--url', url, 'status'])
    assert result.exit_code == 0, result.output
    assert 's3cret' not in result.output
    assert f'redis://:**@127.0.0.1:{port}/0' in result.output
    refused = CliRunner().invoke(main, ['--url', url.replace(str(port), '1'), 'list'])
    assert refused.exit_code == 1 and 'Redis error' in refused.output
    assert 's3cret' not in refused.output


def test_app_option_and_run(redis_url: str, celery_app: Celery, redis_client: redis.Redis,
                            monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv('CLI_TEST_REDIS_URL', redis_url)
    monkeypatch.setenv('CLI_TEST_BROKER_URL', celery_app.conf.broker_url)
    monkeypatch.delitem(__import__('sys').modules, 'tests.cli.celeryapp', raising=False)
    runner = CliRunner()
    app_args = ['-A', 'tests.cli.celeryapp']
    assert runner.invoke(main, [*app_args, 'add', 'e', 'cliapp.echo', '--every', '1h',
                                '--args', '["hi"]']).exit_code == 0  # fmt: skip
    score = redis_client.zscore(SCHEDULE, 'redbeat:e')
    result = runner.invoke(main, [*app_args, 'run', 'e'])
    assert result.exit_code == 0, result.output
    assert result.output.startswith('sent e: task id ')
    broker = redis.Redis.from_url(celery_app.conf.broker_url, decode_responses=True)
    message = json.loads(broker.lpop('celery') or '')
    assert message['headers']['task'] == 'cliapp.echo'
    assert redis_client.zscore(SCHEDULE, 'redbeat:e') == score
    no_app = runner.invoke(main, ['--url', redis_url, 'run', 'e'])
    assert no_app.exit_code == 2 and '-A/--app' in no_app.output
    assert runner.invoke(main, ['-A', 'no.such.module', 'list']).exit_code == 2


def test_celery_group_without_app_takes_url(redis_url: str, redis_client: redis.Redis) -> None:
    """``celery redbeat --url ...`` with Celery's default app (no -A): the URL is enough."""
    from celery.bin.celery import celery

    runner = CliRunner()
    added = runner.invoke(celery, ['redbeat', '--url', redis_url, 'add', 'c', 'proj.c',
                                   '--every', '1m'])  # fmt: skip
    assert added.exit_code == 0, added.output
    assert redis_client.zrange(SCHEDULE, 0, -1) == ['redbeat:c']
