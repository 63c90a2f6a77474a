"""The ACL user of docs/deployment.rst, created verbatim: beat (history on) and the
``redbeat`` command work as that user; a refused history write is logged."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest
import redis
from celery import Celery
from click.testing import CliRunner

from redbeat import RedBeatScheduler, RedBeatSchedulerEntry
from redbeat.cli import main
from tests.docs import acl_setuser
from tests.redis_server import HOST, RedisServer

USER, PASSWORD = 'beat', 's3cret'  # as the recipe has them


@pytest.fixture
def acl_user(redis_server: RedisServer, redis_url: str) -> Iterator[list[str]]:
    """The recipe's user on the test server (removed afterwards); its ACL SETUSER args."""
    command = acl_setuser()
    assert command[2:5] == [USER, 'on', f'>{PASSWORD}']
    with redis_server.client() as admin:
        admin.execute_command(*command)
        yield command
        admin.execute_command('ACL', 'DELUSER', USER)


def _app_as_user(celery_app: Celery, redis_server: RedisServer) -> Celery:
    celery_app.conf.update(
        redbeat_redis_url=f'redis://{USER}:{PASSWORD}@{HOST}:{redis_server.port}/0',
        redbeat_history_size=5,
        redbeat_key_expiry_check='ignore',  # CONFIG GET is optional in the recipe
    )
    return celery_app


def test_beat_and_the_cli_work_as_the_recipe_user(
    acl_user: list[str],
    celery_app: Celery,
    redis_server: RedisServer,
    redis_client: redis.Redis,
    make_scheduler: Callable[..., RedBeatScheduler],
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = _app_as_user(celery_app, redis_server)
    RedBeatSchedulerEntry('ping', 'proj.tasks.ping', 60.0, app=app).save()
    redis_client.zadd('redbeat::schedule', {'redbeat:ping': 0})  # due now
    with caplog.at_level(logging.WARNING):
        scheduler = make_scheduler(app)
        scheduler.tick()
        scheduler.close()  # writes the tick's dispatch records
    assert redis_client.llen('redbeat::history:ping') == 1
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text

    url = app.conf.redbeat_redis_url
    for args in (['list'], ['show', 'ping'], ['check'], ['disable', 'ping'], ['rm', 'ping']):
        result = CliRunner().invoke(main, ['--url', url, *args])
        assert result.exit_code == 0, (args, result.output)
        if args[0] == 'show':
            assert 'history:       latest 1, newest first' in result.output
    assert not redis_client.exists('redbeat:ping', 'redbeat::history:ping')


def test_a_refused_history_write_is_logged(
    acl_user: list[str],
    celery_app: Celery,
    redis_server: RedisServer,
    redis_client: redis.Redis,
    make_scheduler: Callable[..., RedBeatScheduler],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with redis_server.client() as admin:
        admin.execute_command('ACL', 'SETUSER', USER, '-lpush')  # the old recipe lacked it
    app = _app_as_user(celery_app, redis_server)
    RedBeatSchedulerEntry('ping', 'proj.tasks.ping', 60.0, app=app).save()
    redis_client.zadd('redbeat::schedule', {'redbeat:ping': 0})
    with caplog.at_level(logging.WARNING):
        scheduler = make_scheduler(app)
        scheduler.tick()
        scheduler.close()
    assert not redis_client.exists('redbeat::history:ping')
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any('Could not write 1 dispatch record(s) (history): ping:' in m for m in logged)
    assert any('LPUSH refused' in m for m in logged), logged
    # The send itself was recorded: the entry ran.
    meta = redis_client.hget('redbeat:ping', 'meta') or ''
    assert '"total_run_count":1' in meta.replace(' ', '')


def test_a_wrong_password_is_an_error_retried(
    acl_user: list[str],
    celery_app: Celery,
    redis_server: RedisServer,
    make_scheduler: Callable[..., RedBeatScheduler],
    caplog: pytest.LogCaptureFixture,
) -> None:
    celery_app.conf.redbeat_redis_url = f'redis://{USER}:wrong@{HOST}:{redis_server.port}/0'
    scheduler = make_scheduler(celery_app)
    ticks = scheduler.quick_retries + 2  # past the quick retries, into the backoff
    with caplog.at_level(logging.WARNING):
        delays = [scheduler.tick() for _ in range(ticks)]  # after the start-up attempt
    refused = [r for r in caplog.records if 'refused to authenticate' in r.getMessage()]
    assert len(refused) == ticks + 1, caplog.text
    assert all(r.levelno == logging.ERROR for r in refused), caplog.text
    assert 'wrong' not in caplog.text  # the password is never logged
    assert delays[-1] > delays[0] > 0  # retried, with backoff: beat goes on
