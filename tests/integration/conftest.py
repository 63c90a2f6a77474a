"""The integration suite runs on every backend: plain Redis, a three-master Cluster, Valkey.

``backend`` is parametrised over them (Cluster and Valkey carry the
``topology`` mark, so ``-m 'not topology'`` is a quick plain-Redis run).  The
fixtures the tests use follow it: ``celery_app`` keeps its schedule there,
``redis_client`` inspects it, ``keys`` names its keys (``{redbeat}:...`` on
Cluster).  The broker is the plain session server's db 1 for every backend,
so ``sent`` reads the same queue everywhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from redbeat.keys import Keys
from tests.backends import (
    Backend,
    PrivateServer,
    backend_app,
    cluster_backend,
    plain_backend,
    valkey_backend,
)
from tests.redis_server import RedisServer

BACKENDS = [
    'redis',
    pytest.param('cluster', marks=pytest.mark.topology),
    pytest.param('valkey', marks=pytest.mark.topology),
]


@pytest.fixture(params=BACKENDS)
def backend(
    request: pytest.FixtureRequest, redis_server: RedisServer, redis_url: str
) -> Iterator[Backend]:
    """The schedule's server, flushed (``redis_url`` flushed the plain one and the broker)."""
    if request.param == 'cluster':
        chosen = cluster_backend(request.getfixturevalue('cluster_nodes'))
    elif request.param == 'valkey':
        chosen = valkey_backend(request.getfixturevalue('valkey_server'))
    else:
        chosen = plain_backend(redis_server)
    chosen.flush()
    yield chosen
    chosen.close()


@pytest.fixture
def celery_app(backend: Backend, redis_server: RedisServer) -> Iterator[Celery]:
    app = backend_app(backend, redis_server.url_for(1))
    yield app
    app.close()


@pytest.fixture
def redis_client(backend: Backend) -> Any:
    """A client of the schedule's data (a RedisCluster on Cluster)."""
    return backend.client


@pytest.fixture
def private(backend: Backend, tmp_path: Path) -> Iterator[PrivateServer]:
    """A fresh server of the backend's kind, not started yet, for outages; stopped after."""
    server = PrivateServer(backend.name, tmp_path / 'private')
    yield server
    server.stop()


@pytest.fixture
def keys(backend: Backend) -> Keys:
    """The schedule's key names on this backend."""
    return backend.keys
