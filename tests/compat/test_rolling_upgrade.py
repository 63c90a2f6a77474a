"""A rolling upgrade and back: celery-redbeat 2.4.2 beats (from PyPI) beside ours.

Both are real ``celery beat`` processes on one schedule with a custom
``redbeat_lock_key='beat-lock'``; 2.x makes it ``redbeat:beat-lock`` and so do
we, so exactly one of them sends at any time, whichever started first, and
the other takes over when it stops.  The schedule holds what 2.4.2 saved
(interval, crontab, rrule, disabled), a static entry and an entry saved by
us in the compact form (defaults left out); each beat in turn runs it from
the data the previous one left, 2.4.2's from our compact run state too.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import redis
from celery import Celery
from celery.schedules import schedule

from redbeat import RedBeatSchedulerEntry
from tests.compat.legacy import legacy_env, legacy_python, legacy_run
from tests.procs import CeleryProcess, wait_for
from tests.redis_server import RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

APP = """
import os
from celery import Celery

app = Celery('mixed', broker=os.environ['MIXED_BROKER_URL'])
app.conf.update(
    redbeat_redis_url=os.environ['MIXED_REDIS_URL'],
    redbeat_lock_key='beat-lock',
    redbeat_lock_timeout=5,
    beat_max_loop_interval=1,
    timezone='UTC',
    beat_schedule={'every-2s': {'task': 'mixed.tick', 'schedule': 2.0}},
)
"""
LOCK = 'redbeat:beat-lock'
SENT = 'Sending due task every-2s'
#: Entries each leader must send while it leads (the 2-second ones).
FAST = ('every-2s', 'iv', 'rr', 'ours-iv')
#: What we store for 'ours-iv': no kwargs, options or enabled (their defaults).
OURS_DEFINITION = (
    '{"name":"ours-iv","task":"mixed.ours",'
    '"schedule":{"__type__":"interval","every":2,"relative":false},"args":["ours"]}'
)


def sends(log: str, after: int = 0) -> set[str]:
    """Names of the entries a beat's log shows it sent, from offset ``after``."""
    return {line.split('Sending due task ')[1].split()[0] for line in log[after:].splitlines()
            if 'Sending due task ' in line}  # fmt: skip


def beat(name: str, python: str, tmp: Path, env: dict[str, str], ours: bool) -> CeleryProcess:
    argv = [python, '-m', 'celery', '-A', 'mixedapp', 'beat', '--loglevel=INFO',
            '-S', 'redbeat.RedBeatScheduler', '--schedule', str(tmp / f'{name}.db')]  # fmt: skip
    return CeleryProcess(name, argv, cwd=tmp, env=env, log_dir=tmp / 'logs', repo_on_path=ours)


def test_old_and_new_beats_share_one_lock(
    redis_server: RedisServer, redis_url: str, tmp_path: Path
) -> None:
    (tmp_path / 'mixedapp.py').write_text(APP)
    env = {'MIXED_REDIS_URL': redis_url, 'MIXED_BROKER_URL': redis_server.url_for(1)}
    old_env = {**legacy_env(), **env, 'PYTHONUNBUFFERED': '1'}
    new_env = {**env, 'PYTHONUNBUFFERED': '1'}
    old_python = str(legacy_python())
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    broker = redis_server.client(db=1, decode_responses=True)

    def sent() -> int:
        return int(broker.llen('celery'))

    legacy_run('legacy_writer.py', redis_url, tmp_path)
    ours_app = Celery('mixed', broker=env['MIXED_BROKER_URL'])
    ours_app.conf.update(redbeat_redis_url=redis_url, redbeat_lock_key='beat-lock')
    RedBeatSchedulerEntry('ours-iv', 'mixed.ours', schedule(2.0), args=['ours'],
                          app=ours_app).save()  # fmt: skip
    assert client.hget('redbeat:ours-iv', 'definition') == OURS_DEFINITION
    meta = client.hget('redbeat:ours-iv', 'meta') or ''
    assert meta.startswith('{"last_run_at":{"__type__":"datetime","year":'), meta
    assert '"timezone"' not in meta and 'total_run_count' not in meta, meta  # UTC; 0 runs
    first = beat('old-1', old_python, tmp_path, old_env, ours=False)
    new = None
    second = None
    try:
        wait_for(lambda: client.get(LOCK), 60, message='2.4.2 beat holds redbeat:beat-lock')
        wait_for(lambda: SENT in first.log(), 60, message='2.4.2 beat sends')
        new = beat('new', sys.executable, tmp_path, new_env, ours=True)
        wait_for(lambda: 'beat: Starting' in new.log(), 60, message='our beat started')
        baseline = sent()
        wait_for(lambda: sent() >= baseline + 3, 30, message='three more sends')
        assert SENT not in new.log(), 'our beat sent while 2.4.2 held the lock'
        assert 'lock -> `redbeat:beat-lock`' in new.log()

        assert wait_for(lambda: sends(first.log()) >= set(FAST), 30, message='2.4.2 sends all')
        first.stop()  # 2.4.2 releases the lock on a warm shutdown
        wait_for(lambda: sends(new.log()) >= set(FAST), 30, message='ours takes over, sends all')
        second = beat('old-2', old_python, tmp_path, old_env, ours=False)
        wait_for(lambda: 'beat: Starting' in second.log(), 60, message='second 2.4.2 started')
        baseline = sent()
        wait_for(lambda: sent() >= baseline + 3, 30, message='three more sends')
        assert SENT not in second.log() and 'Acquired lock' not in second.log()

        # What 2.4.2 takes over is our compact run state (no UTC zone, no spaces).
        for name in ('iv', 'rr', 'ours-iv'):
            meta = client.hget(f'redbeat:{name}', 'meta') or ''
            assert meta.startswith('{"last_run_at":{"__type__":"datetime"'), meta
            assert '"timezone"' not in meta and '"total_run_count":' in meta, meta
        assert client.hget('redbeat:ours-iv', 'definition') == OURS_DEFINITION
        new.stop()  # rolled back: the 2.4.2 beat takes over
        wait_for(lambda: 'Acquired lock' in second.log(), 30, message='2.4.2 takes over')
        wait_for(lambda: sends(second.log()) >= set(FAST), 30, message='2.4.2 sends all again')
    finally:
        for proc in (first, new, second):
            if proc is not None:
                proc.stop()
        client.close()
        broker.close()
    for proc in (first, new, second):
        assert proc is not None
        log = proc.log()
        assert 'Traceback' not in log and 'ERROR' not in log, log
        assert 'off' not in sends(log)  # disabled: never sent by either
    assert 'skipped' not in new.log()  # ours read every entry 2.4.2 wrote
    # One message per logged send: no beat sent anything it did not log.
    logged = sum(proc.log().count('Sending due task ') for proc in (first, new, second) if proc)
    messages = broker_messages(redis_server)
    assert len(messages) == logged
    tasks = {json.loads(m)['headers']['task'] for m in messages}
    assert tasks <= {'mixed.tick', 'mixed.iv', 'mixed.rr', 'mixed.cron', 'mixed.ours'}


def broker_messages(redis_server: RedisServer) -> list[str]:
    with redis_server.client(db=1, decode_responses=True) as broker:
        return list(broker.lrange('celery', 0, -1))
