"""The examples of docs/troubleshooting.rst and docs/redis-cli.rst, run verbatim.

redis-cli recipes run in bash with ``redis-cli`` on PATH pointing at the test
server (a two-line wrapper adding ``-p PORT``), so each line runs as printed.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import redis
from celery import Celery
from click.testing import CliRunner

from redbeat import RedBeatSchedulerEntry
from redbeat.cli import main
from redbeat.schedulers import RedBeatScheduler
from tests.docs import blocks, commands
from tests.redis_server import RedisServer

SCHEDULE = 'redbeat::schedule'


def redbeat(command: str) -> tuple[int, str]:
    argv = shlex.split(command)
    assert argv[0] == 'redbeat'
    result = CliRunner().invoke(main, argv[1:])
    return result.exit_code, result.output


def test_troubleshooting_page(
    celery_app: Celery, redis_url: str, redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv('REDBEAT_REDIS_URL', redis_url)
    page = blocks('troubleshooting.rst', 'console')
    assert [commands(b) for b in page] == [
        ['redbeat check', 'redbeat show ping'],
        ['redbeat check --fix'],
        ['redbeat status'],
    ]
    RedBeatSchedulerEntry('ping', 'proj.tasks.ping', 3600.0, app=celery_app).save()
    hourly = json.loads(redis_client.hget('redbeat:ping', 'definition') or '{}')
    hourly['schedule']['every'] = 60  # changed with HSET alone
    redis_client.hset('redbeat:ping', 'definition', json.dumps(hourly))
    RedBeatSchedulerEntry('stuck', 'proj.tasks.s', 60.0, app=celery_app).save()
    redis_client.zadd(SCHEDULE, {'redbeat:stuck': -1})
    RedBeatSchedulerEntry('lost', 'proj.tasks.l', 60.0, app=celery_app).save()
    redis_client.zrem(SCHEDULE, 'redbeat:lost')

    check, show = (redbeat(c) for c in commands(page[0]))
    assert check[0] == 1
    kinds = {line.split()[0] for line in check[1].splitlines()[:-1]}
    assert kinds == {'stale-score', 'never-runs', 'unscheduled'}
    assert show[0] == 0 and 'name:          ping' in show[1]

    [fix] = commands(page[1])
    code, out = redbeat(fix)
    assert code == 0 and 'fixed 3 of 3 problems' in out, out
    assert redbeat('redbeat check')[0] == 0
    score = redis_client.zscore(SCHEDULE, 'redbeat:ping')
    assert score is not None and score < datetime.now(timezone.utc).timestamp() + 120

    [status] = commands(page[2])
    code, out = redbeat(status)
    assert code == 0 and out.startswith('redis:') and 'lock:      redbeat::lock' in out


def test_beat_schedule_entry_is_restored_at_start(
    celery_app: Celery, redis_url: str, make_scheduler: type[RedBeatScheduler],
) -> None:  # fmt: skip
    """What the page says of entries from beat_schedule: undone at the next start."""
    celery_app.conf.beat_schedule = {'cfg': {'task': 'proj.tasks.c', 'schedule': 30.0}}
    make_scheduler(celery_app).close()
    code, out = redbeat(f'redbeat --url {redis_url} disable cfg')
    assert code == 0 and 'comes from beat_schedule' in out
    make_scheduler(celery_app).close()
    assert 'enabled:       yes' in redbeat(f'redbeat --url {redis_url} show cfg')[1]


@pytest.fixture
def redis_cli_on_path(redis_server: RedisServer, redis_url: str, tmp_path: Path) -> dict[str, str]:
    real = shutil.which('redis-cli')
    if real is None:
        pytest.fail('redis-cli is not installed (it comes with redis-server)', pytrace=False)
    shim = tmp_path / 'bin' / 'redis-cli'
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec {real} -p {redis_server.port} "$@"\n')
    shim.chmod(0o755)
    # TZ=UTC: "tomorrow" in the page's date command is then the UTC day the test expects.
    return {**os.environ, 'TZ': 'UTC', 'PATH': f'{shim.parent}{os.pathsep}{os.environ["PATH"]}'}


def test_redis_cli_page(redis_cli_on_path: dict[str, str], redis_client: redis.Redis,
                        redis_url: str) -> None:  # fmt: skip
    page = blocks('redis-cli.rst', 'console')

    def run(block: str) -> None:
        for line in commands(block):
            done = subprocess.run(['bash', '-c', line], env=redis_cli_on_path, timeout=30,
                                  capture_output=True, text=True, check=False)  # fmt: skip
            assert done.returncode == 0 and 'ERR' not in done.stdout, (line, done)

    edit = next(i for i, b in enumerate(page) if 'HSET redbeat:ping' in b and '"every": 60' in b)
    for block in page[:edit]:
        run(block)
    assert redis_client.zscore(SCHEDULE, 'redbeat:ping') == 0
    redis_client.zadd(SCHEDULE, {'redbeat:ping': 4102444800})  # as if due in 2100: stale

    run(page[edit])  # the edit recipe: HSET, then ZADD 0
    assert json.loads(redis_client.hget('redbeat:ping', 'definition') or '{}')['schedule'][
        'every'] == 60  # fmt: skip
    assert redis_client.zscore(SCHEDULE, 'redbeat:ping') == 0
    assert CliRunner().invoke(main, ['--url', redis_url, 'check']).exit_code == 0

    days = [datetime.now(timezone.utc).date() + timedelta(days=1)]
    run(page[edit + 1])  # a due time of your choosing
    days.append(datetime.now(timezone.utc).date() + timedelta(days=1))  # midnight passed?
    threes = {datetime(d.year, d.month, d.day, 3, tzinfo=timezone.utc).timestamp() for d in days}
    assert redis_client.zscore(SCHEDULE, 'redbeat:nightly') in threes

    for block in page[edit + 2 :]:
        run(block)
    assert not redis_client.exists('redbeat:nightly')  # the delete recipe ran
