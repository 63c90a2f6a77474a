"""The test harness itself: private Redis server fixtures and process helpers."""

from __future__ import annotations

import itertools
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from celery import Celery

from tests.procs import start_worker, wait_for
from tests.redis_server import HOST, RedisServer


def test_server_is_private_on_loopback(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    assert redis_server.url == f'redis://127.0.0.1:{redis_server.port}/0'
    assert redis_server.port != 6379
    info = redis_client.config_get('bind')
    assert info['bind'].split() == [HOST]
    assert redis_client.config_get('save')['save'] == ''
    assert redis_client.config_get('appendonly')['appendonly'] == 'no'


@pytest.mark.parametrize('round_', [1, 2])
def test_each_redis_url_starts_empty(redis_client: redis.Redis, round_: int) -> None:
    # Both rounds see an empty db although each leaves a key behind.
    assert redis_client.dbsize() == 0
    redis_client.set('left-over', round_)
    assert redis_client.dbsize() == 1


def test_restart_keeps_port_and_aof_keeps_data(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    server: RedisServer = redis_server_factory(appendonly=True)
    port = server.port
    with server.client(decode_responses=True) as conn:
        conn.set('k', 'v')
    server.kill()
    assert not server.running
    with pytest.raises(redis.ConnectionError), server.client(socket_timeout=1) as conn:
        conn.ping()

    server.restart()
    assert server.port == port
    with server.client(decode_responses=True) as conn:
        assert conn.get('k') == 'v'  # the AOF survived SIGKILL


def test_restart_without_aof_loses_data(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    server: RedisServer = redis_server_factory()
    with server.client() as conn:
        conn.set('k', 'v')
    server.restart()
    with server.client() as conn:
        assert conn.get('k') is None


def test_session_server_comes_back_on_its_port_after_a_crash(
    redis_server: RedisServer, redis_url: str
) -> None:
    redis_server.kill()
    redis_server.start()
    assert redis_server.url == redis_url
    with redis_server.client() as conn:
        assert conn.ping()


def test_celery_app_uses_the_private_server(
    celery_app: Celery, redis_server: RedisServer, redis_url: str
) -> None:
    assert celery_app.conf.broker_url == redis_server.url_for(1)
    assert celery_app.conf.redbeat_redis_url == redis_url
    assert celery_app.conf.timezone == 'UTC'
    assert celery_app.conf.beat_max_loop_interval == 5


def test_wait_for_returns_value_or_times_out() -> None:
    counter = itertools.count()
    assert wait_for(lambda: next(counter) >= 3 and 'done', timeout=5, interval=0.01) == 'done'
    with pytest.raises(TimeoutError, match='never'):
        wait_for(lambda: False, timeout=0.2, interval=0.05, message='never')


@pytest.mark.e2e
def test_worker_process_runs_a_task(
    tmp_path: Path, celery_app: Celery, redis_server: RedisServer
) -> None:
    (tmp_path / 'infra_app.py').write_text(
        textwrap.dedent(
            """
            import os
            from celery import Celery

            app = Celery('infra_app', broker=os.environ['BROKER_URL'])

            @app.task(name='infra_app.add')
            def add(x, y):
                return x + y
            """
        )
    )
    env = {'BROKER_URL': celery_app.conf.broker_url}
    with start_worker('infra_app', cwd=tmp_path, env=env, log_dir=tmp_path) as worker:
        celery_app.send_task('infra_app.add', args=[2, 3])
        wait_for(
            lambda: 'succeeded' in worker.log() or not worker.alive,
            timeout=60,
            message='worker ran infra_app.add',
        )
        assert 'Task infra_app.add[' in worker.log()
        assert 'succeeded' in worker.log(), worker.log()
    assert not worker.alive
