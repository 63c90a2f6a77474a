"""One rule for beat and the CLI: REDBEAT_REDIS_URL / REDBEAT_KEY_PREFIX in the
environment override the Celery config (as Celery's CELERY_BROKER_URL does).

docs/high-availability.rst's Kubernetes example sets only the environment
variable; beat and ``redbeat list`` must then look at the same schedule.
"""

from __future__ import annotations

import pytest
import redis
from celery import Celery
from click.testing import CliRunner

from redbeat.cli import main
from redbeat.config import RedBeatConfig
from redbeat.errors import ConfigurationError
from redbeat.schedulers import RedBeatScheduler
from tests.redis_server import RedisServer


def test_environment_overrides_the_config(
    celery_app: Celery, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = redis_server.url_for(3)
    monkeypatch.setenv('REDBEAT_REDIS_URL', other)
    monkeypatch.setenv('REDBEAT_KEY_PREFIX', 'env:')
    config = RedBeatConfig.from_app(celery_app)
    assert (config.redis_url, config.key_prefix, config.lock_key) == (other, 'env:', 'env::lock')


def test_empty_environment_variable_is_unset(
    celery_app: Celery, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv('REDBEAT_REDIS_URL', '')
    assert RedBeatConfig.from_app(celery_app).redis_url == celery_app.conf.redbeat_redis_url


def test_bad_environment_url_names_the_variable(
    celery_app: Celery, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv('REDBEAT_REDIS_URL', 'http://nope')
    with pytest.raises(ConfigurationError, match=r'^REDBEAT_REDIS_URL: '):
        RedBeatConfig.from_app(celery_app)


def test_beat_and_cli_see_one_schedule(
    redis_server: RedisServer, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app's config names db 0; the environment (as in Kubernetes) names db 3."""
    env_url = redis_server.url_for(3)
    monkeypatch.setenv('ENVAPP_REDIS_URL', redis_url)
    monkeypatch.setenv('ENVAPP_BROKER_URL', redis_server.url_for(1))
    monkeypatch.setenv('REDBEAT_REDIS_URL', env_url)
    from tests.compat.envapp import app

    scheduler = RedBeatScheduler(app=app)
    try:
        scheduler.tick()
    finally:
        scheduler.close()
    with redis.Redis.from_url(env_url, decode_responses=True) as client:
        assert client.zscore('redbeat::schedule', 'redbeat:k8s') is not None
    listed = CliRunner().invoke(main, ['-A', 'tests.compat.envapp', 'list'])
    assert listed.exit_code == 0, listed.output
    assert 'k8s' in listed.output
