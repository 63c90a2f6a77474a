"""What a new user ran into (issue 12 §6), each against a real Redis.

Every test fails if its paper cut comes back.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import redis
from celery import Celery
from celery.schedules import crontab
from click.testing import CliRunner, Result

from redbeat import RedBeatScheduler, RedBeatSchedulerEntry
from redbeat import cli as cli_module
from redbeat.api import Schedule
from redbeat.cli import main
from redbeat.config import RedBeatConfig
from redbeat.errors import ConfigurationError

SCHEDULE = 'redbeat::schedule'


def invoke(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=input, env=env)


@pytest.fixture
def run(redis_url: str) -> Callable[..., Result]:
    def call(*args: str, input: str | None = None) -> Result:
        return invoke('--url', redis_url, *args, input=input)

    return call


# --- zones -------------------------------------------------------------------------


def test_cron_without_app_or_tz_is_pinned_to_utc_and_list_shows_the_zone(
    run: Callable[..., Result], redis_client: redis.Redis, celery_app: Celery
) -> None:
    added = run('add', 'nine', 'proj.t', '--cron', '0 9 * * *')
    assert added.exit_code == 0, added.output
    assert 'the cron fields are read in UTC and the entry keeps that zone' in added.output
    # The stored zone makes beat read the fields as the command did, whatever the app's zone.
    assert json.loads(redis_client.hget('redbeat:nine', 'policy') or '{}') == {'timezone': 'UTC'}
    celery_app.conf.timezone = 'Europe/Paris'
    info = Schedule(celery_app).get('nine')
    assert info.next_due is not None and info.next_due.hour == 9
    assert info.next_due.utcoffset() == timedelta(0)

    paris = run('add', 'paris', 'proj.t', '--cron', '0 9 * * *', '--tz', 'Europe/Paris')
    assert 'read in UTC' not in paris.output
    interval = run('add', 'often', 'proj.t', '--every', '5m')
    assert 'read in UTC' not in interval.output  # an interval has no wall time

    header, *rows = run('list').output.splitlines()
    zone_at = header.index('ZONE')
    zones = {row.split()[0]: row[zone_at:].split()[0] for row in rows}
    assert zones == {'nine': 'UTC', 'paris': 'Europe/Paris', 'often': '-'}  # '-': no wall time


def test_beat_of_a_paris_app_runs_a_pinned_cron_entry_at_the_utc_hour(
    run: Callable[..., Result],
    redis_client: redis.Redis,
    celery_app: Celery,
    make_scheduler: Callable[..., RedBeatScheduler],
) -> None:
    assert run('add', 'nine', 'proj.t', '--cron', '0 9 * * *').exit_code == 0
    redis_client.zadd(SCHEDULE, {'redbeat:nine': 0})  # due now: beat computes the next run
    celery_app.conf.timezone = 'Europe/Paris'
    scheduler = make_scheduler(celery_app)
    scheduler.tick()
    scheduler.close()
    score = redis_client.zscore(SCHEDULE, 'redbeat:nine')
    assert score is not None and score > 0
    due = datetime.fromtimestamp(score, timezone.utc)
    assert (due.hour, due.minute) == (9, 0)  # 09:00 UTC, not 09:00 Paris


def test_list_with_an_app_names_the_app_zone(
    celery_app: Celery, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    celery_app.conf.timezone = 'Asia/Tokyo'
    RedBeatSchedulerEntry('cron', 'proj.t', crontab(minute='0'), app=celery_app).save()
    monkeypatch.setattr(cli_module, '_load_app', lambda name: celery_app)
    result = invoke('-A', 'proj', 'list')
    assert result.exit_code == 0, result.output
    assert 'Asia/Tokyo (app)' in result.output.splitlines()[1]


def test_a_wall_time_the_clocks_skip_prints_what_list_shows(
    run: Callable[..., Result],
) -> None:
    # 02:30 does not exist in Paris on the last Sunday of March: clocks go 02:00 -> 03:00.
    year = datetime.now(timezone.utc).year + 1
    day = max(d for d in range(25, 32) if datetime(year, 3, d).weekday() == 6)
    at = f'{year}-03-{day:02d}T02:30'
    added = run('add', 'gap', 'proj.t', '--at', at, '--tz', 'Europe/Paris')
    assert added.exit_code == 0, added.output
    assert 'does not exist in Europe/Paris' in added.output
    assert '03:30 CEST' in added.output and '02:30 CET' not in added.output
    listed = run('list').output
    assert '03:30' in listed and 'CEST' in listed


# --- check -----------------------------------------------------------------------


def test_check_flags_hset_without_zadd_and_fix_rescores(
    run: Callable[..., Result], redis_client: redis.Redis
) -> None:
    assert run('add', 'hourly', 'proj.t', '--every', '1h').exit_code == 0
    before = redis_client.zscore(SCHEDULE, 'redbeat:hourly')
    definition = json.loads(redis_client.hget('redbeat:hourly', 'definition') or '{}')
    definition['schedule']['every'] = 60  # the edit: every minute, with HSET alone
    redis_client.hset('redbeat:hourly', 'definition', json.dumps(definition))

    found = run('check')
    assert found.exit_code == 1
    assert 'stale-score' in found.output and 'HSET without ZADD' in found.output
    fixed = run('check', '--fix')
    assert 'fixed 1 of 1 problem' in fixed.output
    after = redis_client.zscore(SCHEDULE, 'redbeat:hourly')
    assert before is not None and after is not None and after <= before - 3500
    assert run('check').exit_code == 0


def test_check_flags_an_enabled_entry_stuck_at_minus_one(
    run: Callable[..., Result], redis_client: redis.Redis
) -> None:
    run('add', 'stuck', 'proj.t', '--every', '5m')
    redis_client.zadd(SCHEDULE, {'redbeat:stuck': -1})
    found = run('check')
    assert found.exit_code == 1 and 'never-runs' in found.output
    run('check', '--fix')
    score = redis_client.zscore(SCHEDULE, 'redbeat:stuck')
    assert score is not None and score > 0


def test_check_leaves_a_finished_one_off_at_minus_one_alone(
    run: Callable[..., Result], redis_client: redis.Redis
) -> None:
    run('add', 'once', 'proj.t', '--every', '5m', '--end-at', '2020-01-01T00:00',
        '--start-at', '2019-01-01T00:00')  # fmt: skip
    redis_client.zadd(SCHEDULE, {'redbeat:once': -1})
    assert run('check').exit_code == 0


# --- cluster prefix, --url errors -------------------------------------------------


@pytest.mark.topology
def test_cli_on_a_cluster_reads_the_schedule_beat_writes(cluster_nodes: Any) -> None:
    url = cluster_nodes.url
    app = Celery('c', set_as_current=False)
    app.conf.update(redbeat_redis_url=url)
    assert RedBeatConfig.from_app(app).key_prefix == '{redbeat}:'
    RedBeatSchedulerEntry('on-cluster', 'proj.t', 60.0, app=app).save()
    assert Schedule.from_url(url).config.key_prefix == '{redbeat}:'
    result = invoke('--url', url, 'list')
    assert result.exit_code == 0, result.output
    assert 'on-cluster' in result.output
    assert invoke('--url', url, 'rm', 'on-cluster').exit_code == 0


@pytest.mark.parametrize(
    ('args', 'env', 'named'),
    [
        (['--url', 'http://x', 'list'], None, '--url:'),
        (['list'], {'REDBEAT_REDIS_URL': 'http://x'}, 'REDBEAT_REDIS_URL:'),
    ],
)
def test_url_errors_name_the_option(
    args: list[str], env: dict[str, str] | None, named: str
) -> None:
    result = invoke(*args, env=env)
    assert result.exit_code == 2
    assert named in result.output and 'redbeat_redis_url' not in result.output


# --- import -----------------------------------------------------------------------


def test_import_of_a_missing_file_is_one_line(run: Callable[..., Result]) -> None:
    result = run('import', '/nonexistent/schedule.json')
    assert result.exit_code == 2
    assert "'/nonexistent/schedule.json' does not exist" in result.output
    assert 'Traceback' not in result.output


def test_import_stdin_takes_json_without_yaml_and_format_is_explicit(
    run: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_yaml() -> Any:
        raise AssertionError('YAML was not asked for')

    monkeypatch.setattr(cli_module, '_yaml', no_yaml)
    doc = json.dumps({'ping': {'task': 'proj.ping', 'schedule': 30}})
    result = run('import', '-', input=doc)
    assert result.exit_code == 0, result.output
    assert '+ ping' in result.output
    forced = run('import', '--format', 'json', '-', input='ping: {task: proj.ping}')
    assert forced.exit_code == 1 and 'cannot be read as json' in forced.output


def test_import_stdin_yaml_with_format(run: Callable[..., Result]) -> None:
    text = 'ping:\n  task: proj.ping\n  schedule: 30\n'
    result = run('import', '--format', 'yaml', '-', input=text)
    assert result.exit_code == 0, result.output
    assert '+ ping' in result.output


# --- flags, edit, rm, --version, colours ------------------------------------------


@pytest.mark.parametrize('command', [['list'], ['edit', 'x']])
def test_enabled_and_disabled_together_are_refused(
    run: Callable[..., Result], command: list[str]
) -> None:
    run('add', 'x', 'proj.t', '--every', '1m')
    result = run(*command, '--enabled', '--disabled')
    assert result.exit_code == 2 and 'not both' in result.output


def test_edit_without_a_change_writes_nothing(
    run: Callable[..., Result], redis_client: redis.Redis
) -> None:
    run('add', 'x', 'proj.t', '--every', '1m', '--queue', 'q')
    before = redis_client.hgetall('redbeat:x')
    for args in ([], ['--every', '1m'], ['--queue', 'q', '--enabled']):
        result = run('edit', 'x', *args)
        assert result.exit_code == 0, result.output
        assert result.output == 'unchanged x: it already is as given; nothing written\n'
    assert redis_client.hgetall('redbeat:x') == before
    assert run('edit', 'x', '--every', '2m').output.startswith('saved x:')


def test_rm_of_named_entries_needs_no_yes_but_a_glob_does(
    run: Callable[..., Result], redis_client: redis.Redis
) -> None:
    for name in ('a', 'b', 'c', 'g1', 'g2'):
        run('add', name, 'proj.t', '--every', '1m')
    named = run('rm', 'a', 'b', 'c')
    assert named.exit_code == 0, named.output
    assert named.output == 'removed 3 entries: a, b, c\n'
    globbed = run('rm', 'g*')
    assert globbed.exit_code == 2 and 'pass --yes' in globbed.output
    assert redis_client.exists('redbeat:g1', 'redbeat:g2') == 2


def test_version() -> None:
    from redbeat import __version__

    result = invoke('--version')
    assert result.exit_code == 0
    assert result.output.startswith(f'redbeat {__version__} (redbeat-scheduler, import package in')


def test_no_color_turns_colours_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr('sys.stdout.isatty', lambda: True)
    monkeypatch.delenv('NO_COLOR', raising=False)
    assert cli_module._paint('x', fg='red') != 'x'
    monkeypatch.setenv('NO_COLOR', '1')
    assert cli_module._paint('x', fg='red') == 'x'


def test_show_explains_missed_only_when_some_were(run: Callable[..., Result]) -> None:
    run('add', 'x', 'proj.t', '--every', '1m')
    out = run('show', 'x').output
    assert 'missed:        0\n' in out and 'too late' not in out
    assert 'skipped:       0\n' in out


# --- beat_schedule entries --------------------------------------------------------


def test_changing_a_static_entry_warns_and_show_marks_it(
    celery_app: Celery,
    redis_url: str,
    make_scheduler: Callable[..., RedBeatScheduler],
) -> None:
    celery_app.conf.beat_schedule = {'from-config': {'task': 'proj.t', 'schedule': 30.0}}
    make_scheduler(celery_app).close()
    RedBeatSchedulerEntry('dynamic', 'proj.t', 30.0, app=celery_app).save()

    edited = invoke('--url', redis_url, 'edit', 'from-config', '--every', '1m')
    assert edited.exit_code == 0
    assert 'from-config comes from beat_schedule in the Celery config' in edited.output
    for args in (['disable', 'from-config'], ['enable', 'from-config']):
        assert 'comes from beat_schedule' in invoke('--url', redis_url, *args).output
    dynamic = invoke('--url', redis_url, 'edit', 'dynamic', '--every', '1m')
    assert 'beat_schedule' not in dynamic.output

    shown = invoke('--url', redis_url, 'show', 'from-config').output
    assert 'source:        beat_schedule in the Celery config' in shown
    assert 'source:' not in invoke('--url', redis_url, 'show', 'dynamic').output
    as_json = json.loads(invoke('--url', redis_url, 'show', 'from-config', '--json').output)
    assert as_json['static'] is True

    # What the warning says happens: beat restores it at its next start.
    make_scheduler(celery_app).close()
    restored = invoke('--url', redis_url, 'show', 'from-config', '--json').output
    assert json.loads(restored)['schedule'] == {
        '__type__': 'interval',
        'every': 30.0,
        'relative': False,
    }


# --- settings -------------------------------------------------------------------


def test_redis_options_typo_names_the_key_and_the_fix() -> None:
    app = Celery('t', set_as_current=False)
    app.conf.update(
        redbeat_redis_url='redis://127.0.0.1:6379/0',
        redbeat_redis_options={'socket_timeuot': 3, 'retry_period': 5},
    )
    with pytest.raises(ConfigurationError) as caught:
        RedBeatConfig.from_app(app)
    assert caught.value.setting == 'redbeat_redis_options'
    assert "'socket_timeuot' (did you mean 'socket_timeout'?)" in str(caught.value)


def test_2x_cluster_switch_says_what_to_write_instead() -> None:
    app = Celery('t', set_as_current=False)
    app.conf.update(redbeat_redis_url='redis://127.0.0.1:7000/0',
                    redbeat_redis_options={'cluster': True})  # fmt: skip
    with pytest.raises(ConfigurationError, match='redis-cluster://host:port'):
        RedBeatConfig.from_app(app)


def test_broker_transport_options_are_not_checked() -> None:
    app = Celery('t', set_as_current=False)
    app.conf.update(
        broker_url='redis://127.0.0.1:6379/0',
        broker_transport_options={'visibility_timeout': 3600},
    )
    assert RedBeatConfig.from_app(app).redis_options == {'visibility_timeout': 3600}


def test_lock_timeout_as_a_string_is_accepted_as_in_2x() -> None:
    app = Celery('t', set_as_current=False)
    app.conf.update(redbeat_redis_url='redis://127.0.0.1:6379/0', redbeat_lock_timeout='30')
    assert RedBeatConfig.from_app(app).lock_timeout == 30.0


def test_redisbeat_url_setting_left_behind_is_named() -> None:
    app = Celery('t', set_as_current=False)
    app.conf.update(
        broker_url='redis://127.0.0.1:6379/0',
        CELERY_REDIS_SCHEDULER_URL='redis://127.0.0.1:6379/5',
    )
    with pytest.raises(ConfigurationError) as caught:
        RedBeatConfig.from_app(app)
    assert caught.value.setting == 'redbeat_redis_url'
    assert 'CELERY_REDIS_SCHEDULER_URL' in str(caught.value)
    app.conf.redbeat_redis_url = 'redis://127.0.0.1:6379/5'
    assert RedBeatConfig.from_app(app).redis_url.endswith('/5')
