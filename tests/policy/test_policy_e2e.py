"""End to end: policies with a real ``celery worker`` and ``celery beat -S redbeat...``.

One worker and one beat (``tests/e2e/e2eapp.py``) on a private Redis; entries are
added from this process while they run.  Every wait is bounded.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
from celery import Celery

from redbeat.api import Schedule
from tests.e2e.harness import TASK, Cluster, app_env, cluster, duplicates
from tests.procs import wait_for
from tests.redis_server import RedisServer, RedisServerError

pytestmark = pytest.mark.e2e


@dataclass
class Running:
    server: RedisServer
    cluster: Cluster
    api: Schedule


@pytest.fixture(scope='module')
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    try:
        server = RedisServer(tmp_path_factory.mktemp('redis-policy'))
        server.start()
    except RedisServerError as exc:
        pytest.fail(str(exc), pytrace=False)
    workdir = tmp_path_factory.mktemp('policy-live')
    env = app_env(workdir, server.url_for(0), server.url_for(1), lock_timeout=3)
    app = Celery('policy-e2e')
    app.conf.update(redbeat_redis_url=server.url_for(0), timezone='UTC')
    try:
        with cluster(workdir, env) as c:
            worker = c.worker()
            c.wait_ready(worker)
            beat = c.beat()
            wait_for(lambda: 'Acquired lock' in beat.log() or not beat.alive, 30,
                     message='beat acquired the lock')  # fmt: skip
            assert beat.alive, beat.log()
            yield Running(server, c, Schedule(app))
    finally:
        app.close()
        server.stop()


def test_one_off_added_at_run_time_runs_once_then_is_disabled(running: Running) -> None:
    at = datetime.now(timezone.utc) + timedelta(seconds=2)
    running.api.add_once('once-e2e', TASK, at, args=['once-e2e'], history=5)
    records = running.cluster.records
    records.wait_count('once-e2e', 1, timeout=10)
    (run,) = records.of('once-e2e')
    assert run.at >= at.replace(microsecond=0).timestamp() - 0.05, 'sent before its time'
    client = running.server.client(decode_responses=True)
    wait_for(
        lambda: (
            json.loads(client.hget('redbeat:once-e2e', 'definition') or '{}').get('enabled')
            is False
        ),
        5,
        message='the one-off disabled itself',
    )
    assert client.zscore('redbeat::schedule', 'redbeat:once-e2e') == -1
    time.sleep(2.5)  # beat ticks at least twice more (beat_max_loop_interval=1)
    assert records.count('once-e2e') == 1
    info = running.api.get('once-e2e')
    assert info.enabled is False and info.total_run_count == 1
    assert info.history is not None and len(info.history) == 1
    assert info.history[0].outcome == 'sent' and info.history[0].task_id == run.task_id


def test_entry_with_jitter_still_runs(running: Running) -> None:
    saved = time.time()
    running.api.add('jitter-e2e', TASK, 1.0, args=['jitter-e2e'], jitter=0.5)
    records = running.cluster.records
    records.wait_count('jitter-e2e', 4, timeout=15)
    runs = records.of('jitter-e2e')
    assert runs[0].at >= saved + 1.0 - 0.05  # the first occurrence, plus its delay
    assert not duplicates(runs, 0.8)  # jitter may bring two sends 0.5 s together
    assert len({r.task_id for r in runs}) == len(runs)
