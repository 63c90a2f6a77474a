"""The servers a schedule can live on, as the integration and topology tests see them.

A :class:`Backend` is one deployment: the Celery settings a user would write
for it, a client to inspect the data with, the key prefix redbeat uses there
and a flush.  :func:`plain_backend`, :func:`cluster_backend` and
:func:`valkey_backend` build them over the session's servers (fixtures in
``tests/conftest.py``); :class:`PrivateServer` makes a fresh one a test may
stop and start (outages).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest
import redis
from celery import Celery
from redis.cluster import ClusterNode, RedisCluster

from redbeat.keys import Keys
from tests.redis_server import HOST, RedisServer, RedisServerError
from tests.topology.servers import ClusterNodes, find_valkey_server

#: The backends every integration test runs on (see tests/integration/conftest.py).
NAMES = ('redis', 'cluster', 'valkey')


def started(server: Any) -> Any:
    """``server`` started, or the test failed saying why it could not start."""
    try:
        server.start()
    except (RedisServerError, OSError) as exc:
        pytest.fail(f'could not start {type(server).__name__}: {exc}', pytrace=False)
    return server


def cluster_client(nodes: ClusterNodes) -> RedisCluster:
    startup = [ClusterNode(HOST, n.port) for n in nodes.nodes]
    return RedisCluster(startup_nodes=startup, decode_responses=True)


@dataclass
class Backend:
    """One deployment: the settings that reach it and a client to inspect it."""

    name: str
    settings: dict[str, Any]
    client: Any  # redis.Redis or RedisCluster (decode_responses=True)
    prefix: str = 'redbeat:'
    flush: Callable[[], None] = field(default=lambda: None)
    #: A client per server (INFO commandstats, CONFIG SET are per node).
    nodes: list[redis.Redis] = field(default_factory=list)

    @property
    def keys(self) -> Keys:
        return Keys(self.prefix)

    @property
    def schedule(self) -> str:
        return self.keys.schedule

    def key(self, name: str) -> str:
        return self.keys.entry(name)

    def close(self) -> None:
        self.client.close()
        for node in self.nodes:
            node.close()


def backend_app(backend: Backend, broker_url: str, name: str = 't') -> Celery:
    """A Celery app whose schedule lives on ``backend`` (close it after use)."""
    app = Celery(name)
    app.conf.update(
        broker_url=broker_url,
        timezone='UTC',
        beat_max_loop_interval=5,
        result_backend=None,
        **backend.settings,
    )
    return app


def plain_backend(server: RedisServer, name: str = 'redis') -> Backend:
    client = server.client(decode_responses=True)
    return Backend(name, {'redbeat_redis_url': server.url}, client, 'redbeat:', client.flushall,
                   [server.client(decode_responses=True)])  # fmt: skip


def cluster_backend(nodes: ClusterNodes) -> Backend:
    def flush() -> None:
        for node in nodes.nodes:
            with node.client() as conn:
                conn.flushall()

    # No redbeat_key_prefix: on Cluster the default is the hash-tagged '{redbeat}:'.
    node_clients = [n.client(decode_responses=True) for n in nodes.nodes]
    return Backend('cluster', {'redbeat_redis_url': nodes.url}, cluster_client(nodes),
                   '{redbeat}:', flush, node_clients)  # fmt: skip


def valkey_backend(server: RedisServer) -> Backend:
    return plain_backend(server, 'valkey')


class PrivateServer:
    """A fresh server of one backend for one test, to stop and start (an outage).

    Its ports are chosen when it is made, so a URL can be given to beat before
    the server runs.  ``start`` after ``stop`` brings back the same server
    (a cluster's nodes rejoin with their saved cluster config); data is lost.
    """

    def __init__(self, backend: str, workdir: Path) -> None:
        self.backend = backend
        self.server: RedisServer | ClusterNodes
        if backend == 'cluster':
            self.server = ClusterNodes(workdir)
        else:
            binary = find_valkey_server() if backend == 'valkey' else None
            self.server = RedisServer(workdir, binary=binary)

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()

    def client(self) -> Any:
        """A client of the schedule's data (closed by the caller)."""
        if isinstance(self.server, ClusterNodes):
            return cluster_client(self.server)
        return self.server.client(decode_responses=True)
