"""End to end: a real ``celery worker`` and ``celery beat -S redbeat...`` on a private Redis.

Tests in the first part share one running worker + beat (fixture ``live``,
schedule and broker on a password-protected server); each uses entry names
of its own.  The others start their own processes.  Every wait is bounded.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from celery.schedules import schedule

from redbeat import RedBeatSchedulerEntry
from tests.e2e.conftest import PASSWORD, STATIC, Live
from tests.e2e.harness import LOCK_KEY, TASK, app_env, cluster, duplicates, lock_holder
from tests.procs import wait_for
from tests.redis_server import RedisServer

pytestmark = pytest.mark.e2e


def save(live: Live, name: str, every: float, **kwargs: object) -> RedBeatSchedulerEntry:
    entry = RedBeatSchedulerEntry(name, TASK, schedule(every), args=[name], app=live.app, **kwargs)
    return entry.save()


def assert_quiet_after(live: Live, name: str, since: float, watch: float) -> None:
    """Nothing of ``name`` is sent after ``since`` (checked for ``watch`` seconds)."""
    time.sleep(watch)
    late = [e for e in live.cluster.records.of(name) if e.at > since]
    assert not late, f'{name} still sent after it was stopped: {late}'


# --- one shared worker + beat ------------------------------------------------


def test_banner_shows_masked_url_and_lock(live: Live) -> None:
    log = live.beat.log()
    assert f'. redis -> redis://:**@127.0.0.1:{live.server.port}/0' in log, log
    assert '. lock -> `redbeat::lock` 3.00 seconds (3s)' in log, log
    assert PASSWORD not in log
    assert 'scheduler -> redbeat.schedulers.RedBeatScheduler' in log
    token, pid = lock_holder(live.server.client(), LOCK_KEY)
    assert pid == live.beat.pid, token


def test_static_entry_runs_repeatedly(live: Live) -> None:
    records = live.cluster.records
    records.wait_count(STATIC, 4, timeout=15)
    runs = records.of(STATIC)
    gaps = [b.at - a.at for a, b in zip(runs, runs[1:])]
    assert all(0.6 < g < 1.6 for g in gaps), gaps
    assert not duplicates(runs, 1.0)
    assert {e.sender_pid for e in runs} == {live.beat.pid}


def test_entry_saved_from_python_runs(live: Live) -> None:
    saved_at = time.time()
    save(live, 'py-1s', 1)
    live.cluster.records.wait_count('py-1s', 3, timeout=10)
    runs = live.cluster.records.of('py-1s')
    assert runs[0].at >= saved_at + 0.9, 'fired before its first interval had passed'
    assert not duplicates(runs, 1.0)


def test_new_entry_does_not_fire_at_save(live: Live) -> None:
    saved_at = time.time()
    save(live, 'py-4s', 4)
    time.sleep(3.0)
    assert live.cluster.records.count('py-4s') == 0, 'a new entry fired at once when saved'
    live.cluster.records.wait_count('py-4s', 1, timeout=5)
    first = live.cluster.records.of('py-4s')[0]
    assert 3.9 <= first.at - saved_at <= 5.5, first.at - saved_at


def test_hand_written_entry_runs(live: Live) -> None:
    """``HSET redbeat:x definition ...`` + ``ZADD redbeat::schedule 0 x`` (no prefix)."""
    definition = {
        'name': 'raw',
        'task': TASK,
        'schedule': {'__type__': 'interval', 'every': 1, 'relative': False},
        'args': ['raw'],
        'kwargs': {},
        'options': {},
        'enabled': True,
    }
    with live.server.client(decode_responses=True) as conn:
        conn.hset('redbeat:raw', 'definition', json.dumps(definition))
        conn.zadd('redbeat::schedule', {'raw': 0})
    live.cluster.records.wait_count('raw', 3, timeout=10)
    assert not duplicates(live.cluster.records.of('raw'), 1.0)
    with live.server.client(decode_responses=True) as conn:
        members = conn.zrange('redbeat::schedule', 0, -1)
    assert 'redbeat:raw' in members
    assert members.count('raw') + members.count('redbeat:raw') == 1, members


def test_deleted_entry_stops(live: Live) -> None:
    entry = save(live, 'to-delete', 1)
    live.cluster.records.wait_count('to-delete', 2, timeout=10)
    entry.delete()
    deleted_at = time.time()
    assert_quiet_after(live, 'to-delete', deleted_at + 0.5, watch=3.0)
    with live.server.client() as conn:
        assert conn.exists('redbeat:to-delete') == 0
        assert conn.zscore('redbeat::schedule', 'redbeat:to-delete') is None


def test_disabled_entry_stops(live: Live) -> None:
    save(live, 'to-disable', 1)
    live.cluster.records.wait_count('to-disable', 2, timeout=10)
    save(live, 'to-disable', 1, enabled=False)
    disabled_at = time.time()
    assert_quiet_after(live, 'to-disable', disabled_at + 0.5, watch=3.0)
    with live.server.client() as conn:
        assert conn.exists('redbeat:to-disable') == 1  # kept, just not scheduled


def test_bad_entry_is_logged_and_others_keep_running(live: Live) -> None:
    with live.server.client(decode_responses=True) as conn:
        conn.hset('redbeat:broken', 'definition', '{"name": "broken", "task": ')
        conn.zadd('redbeat::schedule', {'redbeat:broken': 0})
    since = time.time()
    wait_for(
        lambda: 'redbeat:broken' in live.beat.log(),
        10,
        message='beat logged the broken entry by its key',
    )
    line = next(x for x in live.beat.log().splitlines() if 'redbeat:broken' in x)
    assert 'ERROR' in line and 'JSON' in line, line
    live.cluster.records.wait_count(STATIC, 3, timeout=10, since=since)
    assert live.beat.alive
    with live.server.client(decode_responses=True) as conn:
        assert conn.hget('redbeat:broken', 'definition') == '{"name": "broken", "task": '


def test_shared_beat_never_sent_anything_twice(live: Live) -> None:
    assert not duplicates(live.cluster.records.all(), 1.0)
    assert 'Traceback' not in live.beat.log()


# --- processes of their own ---------------------------------------------------


def test_redisbeatscheduler_name_runs_the_schedule(
    tmp_path: Path, redis_server: RedisServer, redis_url: str
) -> None:
    env = app_env(tmp_path, redis_url, redis_server.url_for(1), static={'alias-1s': 1})
    with cluster(tmp_path, env) as c:
        c.wait_ready(c.worker())
        beat = c.beat(scheduler='redbeat.RedisBeatScheduler')
        c.records.wait_count('alias-1s', 2, timeout=20)
        assert beat.alive
        assert 'scheduler -> redbeat.schedulers.RedBeatScheduler' in beat.log()


def test_clean_stop_releases_lock_without_traceback(
    tmp_path: Path, redis_server: RedisServer, redis_url: str
) -> None:
    env = app_env(tmp_path, redis_url, redis_server.url_for(1), static={'stop-1s': 1})
    with cluster(tmp_path, env) as c:
        beat = c.beat()
        wait_for(lambda: 'Acquired lock' in beat.log(), 20, message='lock acquired')
        time.sleep(1.5)  # idle leader: waiting for the next due time
        code = beat.stop()
        log = beat.log()
        with redis_server.client() as conn:
            assert conn.get(LOCK_KEY) is None, 'lock not released on SIGTERM'
        assert 'Released lock' in log
        assert 'Traceback' not in log and 'CRITICAL' not in log, log[-3000:]
        assert code == 0, code


def test_beat_survives_redis_restart(
    tmp_path: Path, redis_server_factory: Callable[..., RedisServer]
) -> None:
    server = redis_server_factory(appendonly=True)
    env = app_env(tmp_path, server.url, server.url_for(1), lock_timeout=3,
                  static={'survivor': 1})  # fmt: skip
    with cluster(tmp_path, env) as c:
        c.wait_ready(c.worker())
        beat = c.beat()
        c.records.wait_count('survivor', 2, timeout=20)
        server.stop()  # SIGTERM; AOF keeps the schedule
        time.sleep(3.0)  # longer than redis-py's own retries: beat must cope itself
        server.start()  # same port
        back = time.time()
        c.records.wait_count('survivor', 3, timeout=30, since=back)
        log = beat.log()
        assert beat.alive
        assert 'Traceback' not in log, log[-3000:]
        assert 'WARNING/MainProcess] beat: Redis error' in log, log[-3000:]
        assert not duplicates(c.records.all(), 1.0)


def test_static_entries_come_back_after_redis_lost_its_data(
    tmp_path: Path, redis_server_factory: Callable[..., RedisServer]
) -> None:
    server = redis_server_factory()  # no AOF: a restart empties it
    env = app_env(tmp_path, server.url, server.url_for(1), lock_timeout=3,
                  static={'config-1s': 1})  # fmt: skip
    with cluster(tmp_path, env) as c:
        c.wait_ready(c.worker())
        beat = c.beat()
        c.records.wait_count('config-1s', 2, timeout=20)
        server.restart()
        back = time.time()
        try:
            c.records.wait_count('config-1s', 2, timeout=8, since=back)
        finally:
            assert beat.alive


def test_a_worker_runs_messages_pushed_directly(
    tmp_path: Path, redis_server: RedisServer, redis_url: str
) -> None:
    """Once a kind's messages are verified against kombu's, beat pushes them itself.

    Six static entries of one kind, due together each second (no
    ``before_task_publish`` receiver, which would keep every message with
    Celery): the first tick has kombu publish them and verifies the kind on
    two of them, the next ticks push them straight onto the broker's list.
    The real worker must run those: each entry keeps running with its own
    arguments.
    """
    names = [f'pushed-{i}' for i in range(6)]
    env = app_env(tmp_path, redis_url, redis_server.url_for(1), static=dict.fromkeys(names, 1))
    env['E2E_NO_STAMP'] = '1'
    with cluster(tmp_path, env) as c:
        c.wait_ready(c.worker())
        beat = c.beat()
        line = f'messages of {TASK} are now pushed to the broker directly'
        wait_for(lambda: line in beat.log() or not beat.alive, 20, message='direct pushes')
        pushed_from = time.time()
        for name in names:
            c.records.wait_count(name, 3, timeout=20, since=pushed_from)
        log = beat.log()
        assert 'Traceback' not in log and 'ERROR' not in log, log[-3000:]
        for name in names:
            runs = c.records.of(name)
            assert [e.entry for e in runs] == [name] * len(runs)  # its own arguments
            assert len({e.task_id for e in runs}) == len(runs)  # each occurrence once
