"""The policy options of ``redbeat add``/``edit`` and what ``show``/``list`` print about them.

CliRunner against a real Redis; each test checks the output and what is stored.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol

import pytest
import redis
from click.testing import CliRunner, Result

from redbeat.cli import main
from redbeat.codec import encode_meta

SCHEDULE = 'redbeat::schedule'


class Invoke(Protocol):
    def __call__(self, *args: str) -> Result: ...


@pytest.fixture
def run(redis_url: str) -> Invoke:
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(main, ['--url', redis_url, *args])

    return invoke


def policy(client: redis.Redis, name: str) -> dict[str, Any] | None:
    text = client.hget(f'redbeat:{name}', 'policy')
    return None if text is None else dict(json.loads(text))


def dt(year: int, month: int, day: int, hour: int, minute: int, zone: str) -> dict[str, Any]:
    """A datetime in its stored JSON form (compact: zero time fields and a UTC zone left out)."""
    moment = {'__type__': 'datetime', 'year': year, 'month': month, 'day': day, 'hour': hour,
              'minute': minute, 'timezone': zone}  # fmt: skip
    return {k: v for k, v in moment.items() if v and v != 'UTC'}


def test_add_with_every_policy_option(run: Invoke, redis_client: redis.Redis) -> None:
    result = run('add', 'paris', 'proj.report', '--cron', '30 2 * * *', '--tz', 'Europe/Paris',
                 '--missed', 'all', '--missed-limit', '3', '--catchup-window', '10m',
                 '--start-at', '2026-01-01T00:00', '--end-at', '2099-01-01T00:00+00:00',
                 '--max-runs', '100', '--on-finish', 'delete', '--jitter', '30s',
                 '--history', '10')  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output == 'saved paris: proj.report at 02:30 Europe/Paris\n'
    assert policy(redis_client, 'paris') == {
        'timezone': 'Europe/Paris',
        'missed': 'all',
        'missed_limit': 3,
        'catchup_window': 600.0,
        'start_at': dt(2026, 1, 1, 0, 0, 'Europe/Paris'),  # no offset: read in --tz
        'end_at': dt(2099, 1, 1, 0, 0, 'UTC'),
        'max_runs': 100,
        'on_finish': 'delete',
        'jitter': 30.0,
        'history': 10,
    }
    # the definition stays what celery-redbeat 2.x reads: no policy in it
    definition = json.loads(redis_client.hget('redbeat:paris', 'definition') or '')
    assert set(definition) == {'name', 'task', 'schedule', 'args'}  # the rest at their defaults


def test_add_without_policy_options_writes_no_policy(
    run: Invoke, redis_client: redis.Redis
) -> None:
    assert run('add', 'plain', 'proj.p', '--every', '5m').exit_code == 0
    assert set(redis_client.hkeys('redbeat:plain')) == {'definition', 'meta'}


def test_anchor_on_the_quarter_hour(run: Invoke, redis_client: redis.Redis) -> None:
    result = run('add', 'q', 'proj.q', '--every', '15m', '--anchor', '2026-01-01T00:00')
    assert result.exit_code == 0, result.output
    score = redis_client.zscore(SCHEDULE, 'redbeat:q')
    assert score is not None and score % 900 == 0
    due = datetime.fromtimestamp(score, timezone.utc)
    assert timedelta(0) < due - datetime.now(timezone.utc) <= timedelta(minutes=15)


@pytest.mark.parametrize(
    ('args', 'message'),
    [
        (['--every', '1m', '--missed', 'never'], "--missed 'never': must be one of"),
        (['--every', '1m', '--missed-limit', '-1'], "--missed-limit '-1': must be a whole number"),
        (['--every', '1m', '--missed-limit', 'lots'], "--missed-limit 'lots'"),
        (['--every', '1m', '--catchup-window', 'soon'], "--catchup-window 'soon' is not"),
        (['--every', '1m', '--catchup-window', '-5'], "--catchup-window '-5': must be 0 seconds"),
        (['--every', '1m', '--start-at', 'monday'], "--start-at 'monday' is not a date and time"),
        (['--every', '1m', '--end-at', '2026-13-01'], "--end-at '2026-13-01' is not a date"),
        (['--every', '1m', '--start-at', '2027-01-01', '--end-at', '2026-01-01'],
         '--end-at must be after --start-at'),
        (['--every', '1m', '--max-runs', '2.5'], "--max-runs '2.5': must be a whole number"),
        (['--every', '1m', '--on-finish', 'explode'], "--on-finish 'explode': must be one of"),
        (['--every', '1m', '--jitter', 'x'], "--jitter 'x' is not a duration"),
        (['--every', '1m', '--history', '-2'], "--history '-2': must be a whole number"),
        (['--cron', '0 * * * *', '--anchor', '2026-01-01T00:00'],
         '--anchor applies only to --every schedules'),
        (['--every', '1m', '--anchor', 'noon'], "--anchor 'noon' is not a date and time"),
        (['--every', '1m', '--tz', 'Mars/Olympus'], "--tz 'Mars/Olympus' is not a known time zone"),
        (['--every', '1m', '--delete-after'], '--delete-after needs --at'),
        (['--at', '2099-01-01T00:00', '--delete-after', '--on-finish', 'keep'],
         '--delete-after and --on-finish disagree'),
    ],
)  # fmt: skip
def test_bad_policy_options_are_one_line_errors_and_write_nothing(
    run: Invoke, redis_client: redis.Redis, args: list[str], message: str
) -> None:
    result = run('add', 'x', 'proj.x', *args)
    assert result.exit_code == 1, result.output
    assert result.output.count('\n') == 1 and message in result.output, result.output
    assert redis_client.keys('*') == []


def test_at_one_off_disables_itself_unless_delete_after(
    run: Invoke, redis_client: redis.Redis
) -> None:
    assert run('add', 'launch', 'proj.l', '--at', '2099-01-01T09:00').exit_code == 0
    assert policy(redis_client, 'launch') == {'on_finish': 'disable'}
    assert run('add', 'gone', 'proj.g', '--at', '2099-01-01T09:00', '--delete-after').exit_code == 0
    assert policy(redis_client, 'gone') == {'on_finish': 'delete'}
    result = run('add', 'ny', 'proj.n', '--at', '2099-07-04T09:00', '--tz', 'America/New_York')
    assert result.output == 'saved ny: proj.n once at 2099-07-04 09:00:00 EDT\n'
    assert policy(redis_client, 'ny') == {'timezone': 'America/New_York', 'on_finish': 'disable'}
    assert (
        redis_client.zscore(SCHEDULE, 'redbeat:ny')
        == datetime(2099, 7, 4, 13, tzinfo=timezone.utc).timestamp()
    )


def test_rrule_with_tz_starts_at_midnight_in_that_zone(
    run: Invoke, redis_client: redis.Redis
) -> None:
    result = run('add', 'r', 'proj.r', '--rrule', 'FREQ=DAILY;BYHOUR=9', '--tz', 'Asia/Tokyo')
    assert result.exit_code == 0, result.output
    rule = json.loads(redis_client.hget('redbeat:r', 'definition') or '')['schedule']
    assert rule['dtstart_tz'] == 540  # +09:00
    score = redis_client.zscore(SCHEDULE, 'redbeat:r')
    assert score is not None and (score - 9 * 3600 + 9 * 3600) % 86400 == 0  # 09:00 JST = 00:00Z


def test_edit_sets_keeps_and_clears_policy_fields(run: Invoke, redis_client: redis.Redis) -> None:
    run('add', 'e', 'proj.e', '--cron', '0 9 * * *', '--tz', 'Europe/Paris', '--jitter', '1m')
    redis_client.hset(
        'redbeat:e', 'meta', encode_meta(datetime(2026, 1, 1, tzinfo=timezone.utc), 3)
    )
    result = run('edit', 'e', '--missed', 'skip', '--history', '0')
    assert result.exit_code == 0, result.output
    assert policy(redis_client, 'e') == {'timezone': 'Europe/Paris', 'missed': 'skip',
                                         'jitter': 60.0, 'history': 0}  # fmt: skip
    # the run state is kept
    assert json.loads(redis_client.hget('redbeat:e', 'meta') or '')['total_run_count'] == 3
    assert run('edit', 'e', '--jitter', 'none', '--tz', 'none').exit_code == 0
    assert policy(redis_client, 'e') == {'missed': 'skip', 'history': 0}
    assert run('edit', 'e', '--missed', 'none', '--history', 'none').exit_code == 0
    assert set(redis_client.hkeys('redbeat:e')) == {'definition', 'meta'}  # back to 2.x bytes
    # a naive --start-at in edit is read in the entry's stored zone
    run('edit', 'e', '--tz', 'America/New_York')
    run('edit', 'e', '--start-at', '2030-01-01T00:00')
    stored = policy(redis_client, 'e')
    assert stored is not None and stored['start_at']['timezone'] == 'America/New_York'


def test_edit_checks_options_before_anything(run: Invoke, redis_client: redis.Redis) -> None:
    run('add', 'e', 'proj.e', '--every', '1m', '--jitter', '5s')
    before = redis_client.hgetall('redbeat:e')
    result = run('edit', 'e', '--history', 'many')
    assert result.exit_code == 1 and "--history 'many'" in result.output
    result = run('edit', 'e', '--cron', '0 * * * *', '--anchor', '2026-01-01T00:00')
    assert result.exit_code == 1 and '--anchor applies only' in result.output
    assert redis_client.hgetall('redbeat:e') == before
    assert run('edit', 'missing', '--jitter', '5s').exit_code == 1


def test_enable_and_disable_keep_the_policy(run: Invoke, redis_client: redis.Redis) -> None:
    run('add', 'p', 'proj.p', '--every', '1m', '--max-runs', '3')
    run('disable', 'p')
    run('enable', 'p')
    assert policy(redis_client, 'p') == {'max_runs': 3}


def test_show_prints_policy_counters_and_history(run: Invoke, redis_client: redis.Redis) -> None:
    run('add', 'nightly', 'proj.report', '--cron', '0 3 * * *', '--tz', 'Europe/Paris',
        '--missed', 'all', '--missed-limit', '2', '--jitter', '30s', '--history', '10')  # fmt: skip
    redis_client.hset('redbeat:nightly', mapping={'missed': 4, 'skipped': 1})
    records = [
        {'scheduled': '2026-03-30T01:00:00+00:00', 'sent': '2026-03-30T01:00:12.5+00:00',
         'task_id': 'id-2', 'outcome': 'sent'},
        {'scheduled': '2026-03-28T02:00:00+00:00', 'sent': '2026-03-28T02:00:07+00:00',
         'task_id': 'id-1', 'outcome': 'error'},
    ]  # fmt: skip
    for record in reversed(records):
        redis_client.lpush('redbeat::history:nightly', json.dumps(record))
    result = run('show', 'nightly')
    assert result.exit_code == 0, result.output
    out = result.output
    assert 'schedule:      at 03:00 Europe/Paris' in out
    assert '  time zone:   Europe/Paris\n' in out
    assert '  missed runs: all (at most 2)\n' in out
    assert '  jitter:      up to 30 s\n' in out
    assert '  history:     keeps 10\n' in out
    assert 'missed:        4 ' in out and 'skipped:       1 ' in out
    assert 'history:       latest 2, newest first' in out
    table = out[out.index('SCHEDULED') :].splitlines()
    assert table[0].split() == ['SCHEDULED', 'SENT', 'TASK', 'ID', 'OUTCOME']
    # times in the entry's zone: CEST after the change, CET before it
    assert table[1].split() == ['2026-03-30', '03:00:00', 'CEST', '2026-03-30', '03:00:12', 'CEST',
                                'id-2', 'sent']  # fmt: skip
    assert table[2].split() == ['2026-03-28', '03:00:00', 'CET', '2026-03-28', '03:00:07', 'CET',
                                'id-1', 'error']  # fmt: skip
    assert 'CET)' in out or 'CEST)' in out  # next run in the entry's zone

    data = json.loads(run('show', 'nightly', '--json').output)
    assert (data['missed'], data['skipped']) == (4, 1)
    assert data['policy']['jitter'] == 30.0 and data['policy']['timezone'] == 'Europe/Paris'
    assert [h['task_id'] for h in data['history']] == ['id-2', 'id-1']
    assert data['next_due'].endswith(('+01:00', '+02:00'))


def test_show_default_policy_and_no_history(run: Invoke) -> None:
    run('add', 'plain', 'proj.p', '--every', '5m')
    out = run('show', 'plain').output
    assert 'policy:        default (the app settings)' in out
    assert 'history:       none recorded' in out
    assert 'missed:        0\n' in out  # nothing missed: nothing to explain


def test_list_shows_times_in_the_entry_zone(run: Invoke) -> None:
    run('add', 'tokyo', 'proj.t', '--cron', '0 9 * * *', '--tz', 'Asia/Tokyo')
    run('add', 'utc', 'proj.u', '--cron', '0 9 * * *')
    lines = {line.split()[0]: line for line in run('list').output.splitlines()[1:]}
    assert '09:00:00 JST)' in lines['tokyo'] and 'at 09:00 Asia/Tokyo' in lines['tokyo']
    assert '09:00:00 UTC)' in lines['utc']
    listed = {e['name']: e for e in json.loads(run('list', '--json').output)}
    assert listed['tokyo']['next_due'].endswith('+09:00')
    assert listed['tokyo']['policy'] == {'timezone': 'Asia/Tokyo'}
    # Without -A the app's zone is unknown: the cron fields are pinned to UTC.
    assert listed['utc']['policy'] == {'timezone': 'UTC'} and 'history' not in listed['utc']


def test_export_import_keeps_the_policy(
    run: Invoke, redis_client: redis.Redis, tmp_path: Path
) -> None:
    run('add', 'p', 'proj.p', '--every', '15m', '--anchor', '2026-01-01T00:00+01:00',
        '--end-at', '2099-01-01T00:00', '--jitter', '5s')  # fmt: skip
    stored = redis_client.hget('redbeat:p', 'policy')
    path = tmp_path / 'schedule.json'
    assert run('export', '-o', str(path)).exit_code == 0
    document = json.loads(path.read_text())
    assert document['p']['policy']['jitter'] == 5.0
    assert run('import', str(path)).output.startswith('= p')  # unchanged: policy compared too
    redis_client.delete('redbeat:p')
    assert run('import', str(path)).exit_code == 0
    assert redis_client.hget('redbeat:p', 'policy') == stored
