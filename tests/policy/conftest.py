"""Fixtures of the policy tests: schedulers ticked by hand, the broker queue, the API."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from celery import Celery

from redbeat.api import Schedule
from redbeat.schedulers import RedBeatScheduler
from tests.redis_server import RedisServer


@pytest.fixture
def app(celery_app: Celery) -> Celery:
    """The shared test app, without the leader lock (every tick dispatches)."""
    celery_app.conf.redbeat_lock_key = None
    return celery_app


@pytest.fixture
def make_scheduler(app: Celery) -> Iterator[Callable[[], RedBeatScheduler]]:
    """``RedBeatScheduler(app)`` that never waits on the changes channel; closed afterwards."""
    made: list[RedBeatScheduler] = []

    def make() -> RedBeatScheduler:
        scheduler = RedBeatScheduler(app=app)
        scheduler.listen_for_changes = False
        made.append(scheduler)
        return scheduler

    yield make
    for scheduler in made:
        with contextlib.suppress(Exception):
            scheduler.close()


@pytest.fixture
def api(app: Celery) -> Schedule:
    return Schedule(app)


@pytest.fixture
def broker(redis_server: RedisServer, redis_url: str) -> Iterator[redis.Redis]:
    client = redis_server.client(db=1, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def sent(broker: redis.Redis) -> Callable[[], list[dict[str, Any]]]:
    """Headers of the messages in the broker's ``celery`` queue, oldest first."""

    def read() -> list[dict[str, Any]]:
        return [json.loads(m)['headers'] for m in broker.lrange('celery', 0, -1)][::-1]

    return read
