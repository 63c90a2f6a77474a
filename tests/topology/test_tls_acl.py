"""TLS and ACL: a TLS-only server that wants client certificates, an ACL user.

The happy paths run in ``test_core.py`` (topology ``tls-acl``); here: the ways
of giving the TLS options, credential providers, and the errors users meet
(wrong password, no password, wrong CA, a typo in an option), which must name
the setting to fix and never show a password.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import redis
from celery import Celery
from redis.credentials import CredentialProvider

from redbeat import RedBeatSchedulerEntry
from redbeat.errors import ConfigurationError
from redbeat.schedulers import RedBeatScheduler
from tests.redis_server import HOST, RedisServer
from tests.topology.conftest import ACL_PASSWORD, ACL_USER
from tests.topology.servers import TLSRedisServer

pytestmark = pytest.mark.topology


@pytest.fixture
def make_app(
    tls_server: TLSRedisServer, redis_server: RedisServer, redis_url: str
) -> Iterator[Any]:
    apps: list[Celery] = []
    with tls_server.client() as admin:
        admin.flushall()

    def make(url: str | None = None, **settings: Any) -> Celery:
        app = Celery('tls-test')
        app.conf.update(
            broker_url=redis_server.url_for(1),
            redbeat_redis_url=url
            or f'rediss://{ACL_USER}:{ACL_PASSWORD}@{HOST}:{tls_server.port}/0',
            redbeat_redis_use_ssl=tls_server.tls_options,
            timezone='UTC',
            result_backend=None,
        )
        app.conf.update(settings)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


def save_one(app: Celery) -> None:
    RedBeatSchedulerEntry('tls-entry', 'proj.tasks.t', 60.0, app=app).save()


def test_tls_options_in_the_url_query(make_app: Any, tls_server: TLSRedisServer) -> None:
    query = urlencode({**tls_server.tls_options, 'ssl_cert_reqs': 'CERT_REQUIRED'})
    url = f'rediss://{ACL_USER}:{ACL_PASSWORD}@{HOST}:{tls_server.port}/0?{query}'
    save_one(make_app(url, redbeat_redis_use_ssl=None))
    with tls_server.client(decode_responses=True) as admin:
        assert admin.exists('redbeat:tls-entry')


def test_redis_scheme_with_use_ssl_dict_turns_tls_on(
    make_app: Any, tls_server: TLSRedisServer
) -> None:
    save_one(make_app(f'redis://{ACL_USER}:{ACL_PASSWORD}@{HOST}:{tls_server.port}/0'))


class Provider(CredentialProvider):
    def __init__(self) -> None:
        self.calls = 0

    def get_credentials(self) -> tuple[str, str]:
        self.calls += 1
        return ACL_USER, ACL_PASSWORD


def test_credential_provider(make_app: Any, tls_server: TLSRedisServer) -> None:
    provider = Provider()
    app = make_app(
        f'rediss://{HOST}:{tls_server.port}/0',
        redbeat_redis_options={'credential_provider': provider},
    )
    save_one(app)
    assert provider.calls >= 1


def test_credential_provider_with_a_password_is_refused(make_app: Any) -> None:
    app = make_app(redbeat_redis_options={'credential_provider': Provider()})
    with pytest.raises(ConfigurationError, match='credential_provider'):
        save_one(app)


@pytest.mark.parametrize(
    'userinfo', [f'{ACL_USER}:wrong-pw@', ':wrong-pw@', ''], ids=['acl', 'default', 'none']
)
def test_wrong_credentials_name_the_setting(
    make_app: Any, tls_server: TLSRedisServer, userinfo: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(f'rediss://{userinfo}{HOST}:{tls_server.port}/0')
    with pytest.raises(redis.AuthenticationError) as caught:
        save_one(app)
    message = str(caught.value)
    assert 'redbeat_redis_url' in message and 'refused to authenticate' in message
    assert 'wrong-pw' not in message

    # beat survives it: logs the error (naming the setting) and retries later
    with caplog.at_level(logging.INFO):
        scheduler = RedBeatScheduler(app=app)
        scheduler.listen_for_changes = False
        delay = scheduler.tick()
        assert delay > 0
        assert 'wrong-pw' not in scheduler.info
    log = '\n'.join(r.getMessage() for r in caplog.records)
    assert 'redbeat_redis_url' in log
    assert 'wrong-pw' not in log


def test_wrong_ca_fails_verification(make_app: Any, tls_server: TLSRedisServer) -> None:
    options = {**tls_server.tls_options, 'ssl_ca_certs': str(tls_server.certs.other_ca)}
    app = make_app(redbeat_redis_use_ssl=options)
    with pytest.raises(redis.ConnectionError, match='certificate verify failed'):
        save_one(app)


def test_no_client_certificate_is_refused(make_app: Any, tls_server: TLSRedisServer) -> None:
    app = make_app(redbeat_redis_use_ssl={'ssl_ca_certs': str(tls_server.certs.ca)})
    with pytest.raises(redis.ConnectionError):
        save_one(app)


@pytest.mark.parametrize(
    ('options', 'problem'),
    [
        ({'ssl_cafile': 'x'}, "unknown TLS option 'ssl_cafile'"),
        ({'ssl_ca_certs': '/no/such/ca.pem'}, 'no such file'),
        ({'ssl_cert_reqs': 'sometimes'}, 'ssl_cert_reqs'),
    ],
)
def test_bad_tls_options_name_the_setting(
    make_app: Any, options: dict[str, str], problem: str
) -> None:
    with pytest.raises(ConfigurationError, match='redbeat_redis_use_ssl') as caught:
        save_one(make_app(redbeat_redis_use_ssl=options))
    assert problem in str(caught.value)


def test_acl_user_is_limited_to_the_schedule(tls_server: TLSRedisServer) -> None:
    """The ACL the tests (and the docs) use really is that narrow."""
    with tls_server.client(username=ACL_USER, password=ACL_PASSWORD, decode_responses=True) as conn:
        conn.set('redbeat::probe', 1)
        with pytest.raises(redis.exceptions.NoPermissionError):
            conn.set('other:key', 1)
        with pytest.raises(redis.exceptions.NoPermissionError):
            conn.publish('other-channel', 'x')
        with pytest.raises(redis.exceptions.NoPermissionError):
            conn.flushall()


def test_certs_are_made_by_the_test(tls_server: TLSRedisServer) -> None:
    assert Path(tls_server.certs.ca).read_text().startswith('-----BEGIN CERTIFICATE-----')
