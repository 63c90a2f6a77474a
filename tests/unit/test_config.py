"""Settings (redbeat.config.RedBeatConfig.from_app): spellings, defaults, errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery

from redbeat.config import DEFAULT_LOCK_TIMEOUT, RedBeatConfig, masked_url
from redbeat.errors import ConfigurationError

URL = 'redis://example.invalid:6390/4'


@pytest.fixture
def app() -> Iterator[Celery]:
    app = Celery('config-tests', set_as_current=False)
    yield app
    app.close()


@pytest.mark.parametrize('spelling', ['redbeat_redis_url', 'REDBEAT_REDIS_URL'])
def test_url_spellings_set_directly(app: Celery, spelling: str) -> None:
    app.conf.update({spelling: URL, 'broker_url': 'redis://broker.invalid:6379/0'})
    assert RedBeatConfig.from_app(app).redis_url == URL


def test_django_style_spelling_with_celery_namespace(app: Celery) -> None:
    class Settings:
        CELERY_REDBEAT_REDIS_URL = URL
        CELERY_REDBEAT_KEY_PREFIX = 'django:'
        CELERY_BROKER_URL = 'amqp://guest@rabbit.invalid//'

    app.config_from_object(Settings, namespace='CELERY')
    list(app.conf.keys())  # configuration loaded, as it is by the time beat starts
    config = RedBeatConfig.from_app(app)
    assert config.redis_url == URL
    assert config.key_prefix == 'django:'


@pytest.mark.parametrize(
    ('attrs', 'namespace'),
    [
        ({'redbeat_redis_url': URL}, None),
        ({'REDBEAT_REDIS_URL': URL}, None),
        ({'CELERY_REDBEAT_REDIS_URL': URL}, 'CELERY'),
    ],
)
def test_settings_from_config_object_on_a_fresh_app(
    app: Celery, attrs: dict[str, Any], namespace: str | None
) -> None:
    broker = 'redis://broker.invalid:6379/0'
    source = type('Settings', (), {**attrs, 'broker_url': broker, 'CELERY_BROKER_URL': broker})
    app.config_from_object(source, namespace=namespace)
    assert RedBeatConfig.from_app(app).redis_url == URL


def test_defaults(app: Celery) -> None:
    app.conf.redbeat_redis_url = URL
    config = RedBeatConfig.from_app(app)
    assert config.key_prefix == 'redbeat:'
    assert config.lock_key == 'redbeat::lock'
    assert config.lock_timeout == DEFAULT_LOCK_TIMEOUT == 10
    assert config.redis_options == {}
    assert config.keys.schedule == 'redbeat::schedule'
    assert config.keys.statics == 'redbeat::statics'
    assert config.keys.entry('nightly') == 'redbeat:nightly'
    assert config.delivery == 'at-most-once'
    assert config.keys.journal == 'redbeat::journal'


def test_lock_key_follows_prefix(app: Celery) -> None:
    app.conf.update(redbeat_redis_url=URL, redbeat_key_prefix='{beat}:')
    config = RedBeatConfig.from_app(app)
    assert config.lock_key == '{beat}::lock'
    assert config.keys.schedule == '{beat}::schedule'


def test_explicit_lock_settings(app: Celery) -> None:
    app.conf.update(redbeat_redis_url=URL, redbeat_lock_key='my-lock', redbeat_lock_timeout=30)
    config = RedBeatConfig.from_app(app)
    assert config.lock_key == 'redbeat:my-lock'  # prefixed, as celery-redbeat 2.x does
    assert config.lock_timeout == 30.0


def test_lock_key_none_disables_the_lock(app: Celery) -> None:
    app.conf.update(redbeat_redis_url=URL, redbeat_lock_key=None)
    assert RedBeatConfig.from_app(app).lock_key is None


@pytest.mark.parametrize('broker', ['redis://broker.invalid:6379/3', 'rediss://b.invalid:6380/0',
                                    'sentinel://s.invalid:26379'])  # fmt: skip
def test_falls_back_to_a_redis_broker_url(app: Celery, broker: str) -> None:
    app.conf.broker_url = broker
    assert RedBeatConfig.from_app(app).redis_url == broker


def test_broker_transport_options_follow_the_broker_url(app: Celery) -> None:
    app.conf.update(broker_url='redis://b.invalid/0', broker_transport_options={'db': 2})
    assert RedBeatConfig.from_app(app).redis_options == {'db': 2}


@pytest.mark.parametrize(
    ('settings', 'setting', 'words'),
    [
        ({'broker_url': 'amqp://guest@rabbit.invalid//'}, 'redbeat_redis_url', 'not set'),
        ({}, 'redbeat_redis_url', 'not set'),
        ({'redbeat_redis_url': 'http://example.invalid/'}, 'redbeat_redis_url', "'http'"),
        ({'redbeat_redis_url': 'localhost:6379'}, 'redbeat_redis_url', 'scheme'),
        ({'redbeat_redis_url': 42}, 'redbeat_redis_url', 'URL string'),
        ({'redbeat_redis_url': URL, 'redbeat_lock_timeout': 0}, 'redbeat_lock_timeout', '> 0'),
        ({'redbeat_redis_url': URL, 'redbeat_lock_timeout': -1}, 'redbeat_lock_timeout', '> 0'),
        ({'redbeat_redis_url': URL, 'redbeat_lock_timeout': 'abc'}, 'redbeat_lock_timeout',
         "'abc'"),
        ({'redbeat_redis_url': URL, 'redbeat_lock_timeout': True}, 'redbeat_lock_timeout', 'True'),
        ({'redbeat_redis_url': URL, 'redbeat_lock_timeout': float('inf')}, 'redbeat_lock_timeout',
         'finite'),
        ({'redbeat_redis_url': URL, 'redbeat_key_prefix': ''}, 'redbeat_key_prefix', 'non-empty'),
        ({'redbeat_redis_url': URL, 'redbeat_key_prefix': 5}, 'redbeat_key_prefix', 'non-empty'),
        ({'redbeat_redis_url': URL, 'redbeat_redis_options': 'db=1'}, 'redbeat_redis_options',
         'dict'),
        ({'redbeat_redis_url': URL, 'redbeat_redis_options': [('db', 1)]},
         'redbeat_redis_options', 'dict'),
        ({'redbeat_redis_url': URL, 'redbeat_lock_key': ''}, 'redbeat_lock_key', 'None'),
        ({'redbeat_redis_url': URL, 'redbeat_redis_use_ssl': 'yes'}, 'redbeat_redis_use_ssl',
         'dict'),
        ({'redbeat_redis_url': URL, 'redbeat_delivery': 'exactly-once'}, 'redbeat_delivery',
         "'at-least-once', got 'exactly-once'"),
    ],
)  # fmt: skip
def test_bad_settings_fail_naming_the_setting(
    app: Celery, settings: dict[str, Any], setting: str, words: str
) -> None:
    app.conf.update(settings)
    with pytest.raises(ConfigurationError) as caught:
        RedBeatConfig.from_app(app)
    assert caught.value.setting == setting
    assert str(caught.value).startswith(setting + ':')
    assert words in caught.value.problem


def test_bad_url_error_does_not_leak_the_password(app: Celery) -> None:
    app.conf.redbeat_redis_url = 'http://user:s3cret@example.invalid/'
    with pytest.raises(ConfigurationError) as caught:
        RedBeatConfig.from_app(app)
    assert 's3cret' not in str(caught.value)


@pytest.mark.parametrize(
    ('url', 'expected'),
    [
        ('redis://:s3cret@h:6379/0', 'redis://:**@h:6379/0'),
        ('redis://user:s3cret@h:6379/0', 'redis://user:**@h:6379/0'),
        ('rediss://u:p%40ss@h/1?ssl_cert_reqs=required', 'rediss://u:**@h/1?ssl_cert_reqs=required'),
        ('redis://h:6379/0', 'redis://h:6379/0'),
        ('sentinel://:pw1@s1:26379;sentinel://:pw2@s2:26379',
         'sentinel://:**@s1:26379;sentinel://:**@s2:26379'),
    ],
)  # fmt: skip
def test_masked_url_hides_passwords(url: str, expected: str) -> None:
    assert masked_url(url) == expected


def test_config_masked_url(app: Celery) -> None:
    app.conf.redbeat_redis_url = 'redis://:topsecret@h:6379/0'
    config = RedBeatConfig.from_app(app)
    assert 'topsecret' not in config.masked_url
    assert config.redis_url == 'redis://:topsecret@h:6379/0'


def test_timezone_and_max_loop_interval_come_from_celery(app: Celery) -> None:
    app.conf.update(redbeat_redis_url=URL, timezone='Europe/Paris', beat_max_loop_interval=7)
    config = RedBeatConfig.from_app(app)
    assert config.timezone == 'Europe/Paris'
    assert config.max_loop_interval == 7.0


@pytest.mark.parametrize('spelling', ['redbeat_delivery', 'REDBEAT_DELIVERY'])
def test_delivery_at_least_once(app: Celery, spelling: str) -> None:
    app.conf.update({'redbeat_redis_url': URL, spelling: 'at-least-once'})
    assert RedBeatConfig.from_app(app).delivery == 'at-least-once'
