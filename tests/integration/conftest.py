"""Helpers for integration tests: schedulers that are closed afterwards, the broker queue."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from celery import Celery

from redbeat.schedulers import RedBeatScheduler
from tests.redis_server import RedisServer


@pytest.fixture
def make_scheduler() -> Iterator[Callable[..., RedBeatScheduler]]:
    """Build ``RedBeatScheduler(app=...)`` without the change subscription (tick never waits)."""
    made: list[RedBeatScheduler] = []

    def make(app: Celery, **kwargs: Any) -> RedBeatScheduler:
        scheduler = RedBeatScheduler(app=app, **kwargs)
        scheduler.listen_for_changes = False
        made.append(scheduler)
        return scheduler

    yield make
    for scheduler in made:
        with contextlib.suppress(Exception):  # a test may have stopped its Redis
            scheduler.close()


@pytest.fixture
def broker_client(redis_server: RedisServer, redis_url: str) -> Iterator[redis.Redis]:
    client = redis_server.client(db=1, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def sent(broker_client: redis.Redis) -> Callable[[], list[dict[str, Any]]]:
    """The messages waiting in the broker's ``celery`` queue: their headers, oldest first."""

    def read() -> list[dict[str, Any]]:
        raw = broker_client.lrange('celery', 0, -1)
        headers = [json.loads(m)['headers'] for m in raw]
        return headers[::-1]  # kombu LPUSHes

    return read
