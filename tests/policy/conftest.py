"""Fixtures of the policy tests: schedulers ticked by hand and the API.

The broker queue is read with ``sent`` of ``tests/conftest.py``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest
from celery import Celery

from redbeat.api import Schedule
from redbeat.schedulers import RedBeatScheduler


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
