"""Fixtures of the topology tests: Redis Cluster, TLS + ACL, Valkey (and Sentinel).

The Cluster and Valkey servers are session fixtures of ``tests/conftest.py``
(the integration suite runs on them too).

``topology`` is parametrised over the deployments of ``docs/deployment.rst``;
each gives the Celery settings a user would write for it, a client to look at
the data with, and flushes the data before the test.  The broker is the
session's plain private Redis (db 1), so sent messages can be read back.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from celery import Celery

from tests.backends import Backend, backend_app, cluster_backend, started, valkey_backend
from tests.docs import acl_rules
from tests.redis_server import HOST, RedisServer
from tests.topology.servers import Certs, TLSRedisServer, make_certs

ADMIN_PASSWORD = 'admin-pw-Zq8'
ACL_USER = 'beat'
ACL_PASSWORD = 'beat-pw-7Hs'
#: What an ACL user of redbeat needs with the default prefix, as
#: docs/deployment.rst gives it: the rules after ``ACL SETUSER beat on >PASSWORD``.
ACL_RULES = acl_rules()


#: The deployment a topology test runs on (see tests/backends.py).
Topology = Backend


@pytest.fixture(scope='session')
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp('certs'))


@pytest.fixture(scope='session')
def tls_server(tmp_path_factory: pytest.TempPathFactory, certs: Certs) -> Iterator[TLSRedisServer]:
    server = TLSRedisServer(tmp_path_factory.mktemp('redis-tls'), certs, ADMIN_PASSWORD)
    try:
        started(server)
        with server.client() as admin:
            admin.acl_setuser(ACL_USER, enabled=True, reset=True, passwords=[f'+{ACL_PASSWORD}'])
            admin.execute_command('ACL', 'SETUSER', ACL_USER, *ACL_RULES)
        yield server
    finally:
        server.stop()


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


@pytest.fixture(params=['cluster', 'tls-acl', 'valkey'])
def topology(request: pytest.FixtureRequest) -> Iterator[Topology]:
    if request.param == 'cluster':
        topo = cluster_backend(request.getfixturevalue('cluster_nodes'))
    elif request.param == 'tls-acl':
        topo = tls_topology(request.getfixturevalue('tls_server'))
    else:
        topo = valkey_backend(request.getfixturevalue('valkey_server'))
    topo.flush()
    yield topo
    topo.close()


@pytest.fixture
def topo_app(topology: Topology, redis_server: RedisServer, redis_url: str) -> Iterator[Celery]:
    """A Celery app whose schedule lives on ``topology``; broker: the plain server's db 1."""
    app = backend_app(topology, redis_server.url_for(1))
    yield app
    app.close()
