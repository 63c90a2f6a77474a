"""Fixtures every test layer shares: a private Redis server and a Celery app.

One redis-server runs for the whole session on a free 127.0.0.1 port; each
test gets it flushed. Tests that need their own server (with AOF, or to kill
it) use ``redis_server_factory``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

from tests.redis_server import RedisServer, RedisServerError


@pytest.fixture(scope='session')
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    try:
        server = RedisServer(tmp_path_factory.mktemp('redis'))
        server.start()
    except RedisServerError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def redis_server_factory(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """Start extra private servers; each is stopped at the end of the test."""
    servers: list[RedisServer] = []

    def make(**kwargs: Any) -> RedisServer:
        server = RedisServer(tmp_path / f'redis-{len(servers)}', **kwargs)
        servers.append(server)
        server.start()
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """db 0 of the session server, with every db flushed."""
    if not redis_server.running:  # a previous test stopped or killed it
        redis_server.start()
    with redis_server.client() as conn:
        conn.flushall()
    return redis_server.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def celery_app(redis_server: RedisServer, redis_url: str) -> Iterator[Celery]:
    app = Celery('t')
    app.conf.update(
        broker_url=redis_server.url_for(1),  # flushed with everything by redis_url
        redbeat_redis_url=redis_url,
        timezone='UTC',
        beat_max_loop_interval=5,
        result_backend=None,
    )
    yield app
    app.close()
