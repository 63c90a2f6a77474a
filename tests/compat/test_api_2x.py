"""celery-redbeat 2.x's Python API, used as its docs and its own tests use it.

Each test is written the way a 2.x user (or 2.x's test-suite) calls the name,
against the real Redis the suite starts; what it asserts is 2.x's documented
behaviour.
"""

from __future__ import annotations

import logging
import warnings
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import redis
from celery import Celery
from celery.schedules import schedule

from redbeat import RedBeatSchedulerEntry
from redbeat.checks import RedBeatKeyExpiryError, check_key_expiry
from redbeat.decoder import get_utcoffset_minutes
from redbeat.errors import ConfigurationError
from redbeat.schedulers import (
    RedBeatConfig,
    RedBeatScheduler,
    RetryingConnection,
    acquire_distributed_beat_lock,
    ensure_conf,
    get_redis,
)


def entry(app: Celery, name: str, seconds: float = 60) -> RedBeatSchedulerEntry:
    return RedBeatSchedulerEntry(name, 'tasks.some_task', schedule(seconds), args=['arg1', 2],
                                 app=app)  # fmt: skip


# --- docs/tasks.rst: "Listing Tasks" ----------------------------------------------


def test_list_every_entry_recipe(celery_app: Celery) -> None:
    app = celery_app
    entry(app, 'due').save()
    entry(app, 'later', 3600).save()

    conf = ensure_conf(app)
    keys = get_redis(app).zrange(conf.schedule_key, 0, -1)
    entries = [RedBeatSchedulerEntry.from_key(key, app=app) for key in keys]

    assert sorted(e.name for e in entries) == ['due', 'later']
    assert entries[0].args == ['arg1', 2]


def test_load_one_entry_by_name(celery_app: Celery) -> None:
    app = celery_app
    saved = entry(app, 'task-name').save()
    key = RedBeatSchedulerEntry.generate_key(app, 'task-name')
    assert key == 'redbeat:task-name'
    assert RedBeatSchedulerEntry.from_key(key, app=app).key == saved.key
    with pytest.raises(KeyError):
        RedBeatSchedulerEntry.from_key(RedBeatSchedulerEntry.generate_key(app, 'nosuchtask'),
                                       app=app)  # fmt: skip


# --- app.redbeat_conf / app.redbeat_redis ----------------------------------------


def test_ensure_conf_sets_app_attributes_once(celery_app: Celery) -> None:
    conf = ensure_conf(celery_app)
    assert celery_app.redbeat_conf is conf  # type: ignore[attr-defined]
    assert ensure_conf(celery_app) is conf
    client = get_redis(celery_app)
    assert celery_app.redbeat_redis is client  # type: ignore[attr-defined]
    assert client.ping() is True
    client.set('x', 'y')
    assert client.get('x') == 'y'  # decode_responses, as in 2.x


def test_scheduler_sets_redbeat_conf_and_lock_attributes(
    celery_app: Celery, redis_client: redis.Redis
) -> None:
    celery_app.conf.redbeat_lock_key = 'beat-lock'
    celery_app.conf.redbeat_lock_timeout = '13'  # a string, as 2.x accepted
    scheduler = RedBeatScheduler(app=celery_app)
    scheduler.listen_for_changes = False
    try:
        assert celery_app.redbeat_conf.schedule_key == 'redbeat::schedule'  # type: ignore[attr-defined]
        assert scheduler.lock_key == 'redbeat:beat-lock'
        assert scheduler.lock_timeout == 13.0
        scheduler.tick()
        assert redis_client.get('redbeat:beat-lock') is not None
    finally:
        scheduler.close()


# --- RedBeatConfig(app), as 2.x's tests build it ---------------------------------


def test_redbeat_config_of_app(celery_app: Celery) -> None:
    conf = RedBeatConfig(celery_app)  # type: ignore[arg-type]
    assert conf.app is celery_app
    assert conf.redis_url == celery_app.conf.redbeat_redis_url
    assert conf.key_prefix == 'redbeat:'
    assert conf.schedule_key == conf.key_prefix + ':schedule'
    assert conf.statics_key == conf.key_prefix + ':statics'
    assert conf.lock_key == conf.key_prefix + ':lock'
    assert conf.key_expiry_check == 'error'
    assert conf.either_or('redbeat_redis_url') == conf.redis_url
    assert conf.either_or('redbeat_nothing', 'default') == 'default'
    assert conf.is_key_in_conf('redbeat_redis_url') and not conf.is_key_in_conf('redbeat_x')
    celery_app.conf.beat_schedule = {'foo': {'task': 't', 'schedule': 5}}
    assert conf.schedule == celery_app.conf.beat_schedule


@pytest.mark.parametrize(
    ('setting', 'expected'),
    [
        ({'redbeat_key_prefix': 'test-prefix:'}, ('test-prefix:', 'test-prefix::lock')),
        ({'redbeat_lock_key': ':custom'}, ('redbeat:', 'redbeat::custom')),
        ({'redbeat_lock_key': 'beat-lock'}, ('redbeat:', 'redbeat:beat-lock')),
        ({'redbeat_lock_key': 'redbeat:already'}, ('redbeat:', 'redbeat:already')),
        ({'redbeat_lock_key': None}, ('redbeat:', None)),
    ],
)
def test_redbeat_config_keys(
    celery_app: Celery, setting: dict[str, Any], expected: tuple[str, str | None]
) -> None:
    celery_app.conf.update(setting)
    conf = RedBeatConfig(celery_app)  # type: ignore[arg-type]
    assert (conf.key_prefix, conf.lock_key) == expected


def test_key_expiry_check_setting(celery_app: Celery) -> None:
    celery_app.conf.redbeat_key_expiry_check = 'RAISE'
    assert RedBeatConfig.from_app(celery_app).key_expiry_check == 'raise'
    celery_app.conf.redbeat_key_expiry_check = 'shout'
    with pytest.raises(ConfigurationError, match='redbeat_key_expiry_check'):
        RedBeatConfig.from_app(celery_app)


def test_redbeat_config_of_something_else_is_refused() -> None:
    with pytest.raises(TypeError, match='from_app'):
        RedBeatConfig(42)  # type: ignore[arg-type]


# --- RedBeatSchedulerEntry's static helpers --------------------------------------


def test_entry_helpers(celery_app: Celery, redis_client: redis.Redis) -> None:
    app = celery_app
    saved = entry(app, 'helpers').save()
    key = saved.key
    definition = RedBeatSchedulerEntry.load_definition(key, app=app)
    assert definition['task'] == 'tasks.some_task'
    assert definition['schedule'] == schedule(60)
    text = redis_client.hget(key, 'definition')
    assert RedBeatSchedulerEntry.decode_definition(text)['args'] == ['arg1', 2]
    assert RedBeatSchedulerEntry.load_definition(key, definition=text)['name'] == 'helpers'
    meta = RedBeatSchedulerEntry.load_meta(key, app=app)
    assert isinstance(meta['last_run_at'], datetime)
    assert RedBeatSchedulerEntry.decode_meta(None) == {'last_run_at': None}
    assert RedBeatSchedulerEntry.decode_meta(redis_client.hget(key, 'meta')) == meta
    with pytest.raises(KeyError):
        RedBeatSchedulerEntry.load_definition('redbeat:nope', app=app)
    assert saved.rank == 0
    entry(app, 'sooner', 1).save()
    assert saved.rank == 1 and entry(app, 'unsaved').rank is None


def test_get_utcoffset_minutes() -> None:
    assert get_utcoffset_minutes(datetime(2024, 1, 1, tzinfo=timezone.utc)) == 0
    assert get_utcoffset_minutes(datetime(2024, 1, 1)) == 0
    east = timezone(timedelta(hours=5, minutes=30))
    assert get_utcoffset_minutes(datetime(2024, 1, 1, tzinfo=east)) == 330


# --- the lock, and RetryingConnection ---------------------------------------------


class Sender:
    def __init__(self, scheduler: RedBeatScheduler) -> None:
        self.scheduler = scheduler


def test_acquire_distributed_beat_lock(celery_app: Celery, redis_client: redis.Redis) -> None:
    scheduler = RedBeatScheduler(app=celery_app)
    other = RedBeatScheduler(app=celery_app)
    try:
        with pytest.warns(DeprecationWarning):
            assert acquire_distributed_beat_lock(Sender(scheduler)) is True
        assert redis_client.get(scheduler.lock_key or '') is not None
        with pytest.warns(DeprecationWarning):
            assert acquire_distributed_beat_lock(Sender(other)) is False
        scheduler.close()
        assert redis_client.get(scheduler.lock_key or '') is None
    finally:
        other.close()


def test_retrying_connection(celery_app: Celery) -> None:
    with pytest.warns(DeprecationWarning):
        wrapped = RetryingConnection(5, get_redis(celery_app))
    assert wrapped.ping() is True
    assert wrapped.connection_pool is get_redis(celery_app).connection_pool

    calls: list[int] = []

    class Flaky:
        def get(self, key: str) -> str:
            calls.append(1)
            if len(calls) < 3:
                raise redis.ConnectionError('gone')
            return 'back'

    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        flaky = RetryingConnection(60, Flaky())
        flaky._backoff.compute = lambda failures: 0.0  # type: ignore[method-assign]
        assert flaky.get('k') == 'back' and len(calls) == 3
        calls.clear()
        with pytest.raises(redis.ConnectionError):
            RetryingConnection(0, Flaky()).get('k')  # retry_period 0: no retry
        assert len(calls) == 1


# --- redbeat.checks (celery-redbeat 2.4.3) ----------------------------------------


@pytest.fixture
def evicting(redis_client: redis.Redis) -> Any:
    redis_client.config_set('maxmemory', '100mb')
    redis_client.config_set('maxmemory-policy', 'allkeys-lru')
    yield redis_client
    redis_client.config_set('maxmemory-policy', 'noeviction')
    redis_client.config_set('maxmemory', '0')


@pytest.mark.parametrize(('mode', 'level'), [('warn', logging.WARNING), ('error', logging.ERROR)])
def test_check_key_expiry_logs(
    evicting: redis.Redis, caplog: pytest.LogCaptureFixture, mode: str, level: int
) -> None:
    with caplog.at_level(logging.WARNING, logger='celery.beat'):
        findings = check_key_expiry(evicting, mode)
    assert len(findings) == 1 and 'allkeys-lru' in findings[0]
    assert [r.levelno for r in caplog.records] == [level]


def test_check_key_expiry_ignore_raise_and_safe(
    evicting: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    assert check_key_expiry(evicting, 'ignore') == []
    with pytest.raises(RedBeatKeyExpiryError, match='allkeys-lru'):
        check_key_expiry(evicting, 'raise')
    evicting.config_set('maxmemory-policy', 'volatile-lru')
    assert check_key_expiry(evicting, 'raise') == []


def test_beat_refuses_to_start_with_raise(evicting: redis.Redis, celery_app: Celery) -> None:
    celery_app.conf.redbeat_key_expiry_check = 'raise'
    scheduler = RedBeatScheduler.__new__(RedBeatScheduler)
    with pytest.raises(RedBeatKeyExpiryError):
        scheduler.__init__(app=celery_app)  # type: ignore[misc]
    celery_app.conf.redbeat_key_expiry_check = 'warn'
    warned = RedBeatScheduler(app=celery_app)
    try:
        assert len(warned.key_expiry_findings) == 1
        assert 'WARNING -> Redis maxmemory' in warned.info
    finally:
        warned.close()


def test_saved_entry_sets_redbeat_conf(celery_app: Celery, redis_client: redis.Redis) -> None:
    """As 2.x's entry tests read it: ``app.redbeat_conf`` after saving an entry."""
    e = entry(celery_app, 'test').save()
    conf = celery_app.redbeat_conf  # type: ignore[attr-defined]
    assert e.key == conf.key_prefix + 'test'
    assert redis_client.zrank(conf.schedule_key, e.key) == 0
    assert redis_client.zscore(conf.schedule_key, e.key) == pytest.approx(e.score, abs=1)


def test_scheduler_arguments_override_the_lock_settings(celery_app: Celery) -> None:
    """As in 2.x, ``lock_key`` given to the scheduler is used as it is."""
    scheduler = RedBeatScheduler(app=celery_app, lock_key='given', lock_timeout=7)
    try:
        assert (scheduler.lock_key, scheduler.lock_timeout) == ('given', 7.0)
        assert celery_app.redbeat_conf.app is celery_app  # type: ignore[attr-defined]
        assert scheduler.config.app is celery_app
    finally:
        scheduler.close()
