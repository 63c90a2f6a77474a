"""Fixtures of the end-to-end tests: private servers and a running worker + beat.

``live`` is one worker and one ``celery beat -S redbeat.RedBeatScheduler``
against a password-protected private Redis (schedule in db 0, broker in db
1), shared by the tests of a module: each test uses its own entry names.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from celery import Celery

from tests.e2e.harness import Cluster, PasswordRedisServer, app_env, cluster
from tests.procs import CeleryProcess, wait_for
from tests.redis_server import RedisServerError

PASSWORD = 's3cr3t-e2e-pw'
#: The static entry every ``live`` beat runs (from beat_schedule).
STATIC = 'static-1s'


@dataclass
class Live:
    server: PasswordRedisServer
    cluster: Cluster
    worker: CeleryProcess
    beat: CeleryProcess
    app: Celery  # for saving entries from the test process


@pytest.fixture(scope='module')
def password_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PasswordRedisServer]:
    try:
        server = PasswordRedisServer(tmp_path_factory.mktemp('redis-pw'), password=PASSWORD)
        server.start()
    except RedisServerError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.stop()


def make_app(redis_url: str) -> Celery:
    app = Celery('e2e-test')
    app.conf.update(redbeat_redis_url=redis_url, timezone='UTC', beat_max_loop_interval=1)
    return app


@pytest.fixture(scope='module')
def live(
    password_server: PasswordRedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    workdir = tmp_path_factory.mktemp('live')
    env = app_env(
        workdir,
        password_server.url_for(0),
        password_server.url_for(1),
        lock_timeout=3,
        static={STATIC: 1},
    )
    app = make_app(password_server.url_for(0))
    with cluster(workdir, env) as c:
        worker = c.worker()
        c.wait_ready(worker)
        beat = c.beat()
        wait_for(
            lambda: 'Acquired lock' in beat.log() or not beat.alive,
            30,
            message='beat acquired the lock',
        )
        assert beat.alive, beat.log()
        yield Live(password_server, c, worker, beat, app)
    app.close()
