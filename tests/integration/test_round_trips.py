"""Round trips and commands per tick: constant, whatever the number of due entries.

Round trips are counted where the store's client takes a connection from its
pool (one per command or per pipeline); commands with INFO commandstats on
the private test server.  Counts are exact; no timing is asserted.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
from celery import Celery
from celery.schedules import schedule

from redbeat import RedBeatSchedulerEntry, save_entries
from redbeat.schedulers import RedBeatScheduler

Make = Callable[..., RedBeatScheduler]
ORPHAN = {
    'name': 'orphan',
    'task': 'proj.tasks.job',
    'schedule': {'__type__': 'interval', 'every': 60},
}


@contextmanager
def counted_round_trips(client: redis.Redis | None = None) -> Iterator[list[int]]:
    """Round trips of ``client``; without one, of every client (those made meanwhile too)."""
    pool: Any = redis.ConnectionPool if client is None else client.connection_pool
    original = pool.get_connection
    count = [0]

    def get_connection(*args: Any, **kwargs: Any) -> Any:
        count[0] += 1
        return original(*args, **kwargs)

    pool.get_connection = get_connection
    try:
        yield count
    finally:
        pool.get_connection = original


def commands(client: redis.Redis) -> dict[str, int]:
    stats = client.info('commandstats')
    skip = ('cmdstat_info', 'cmdstat_config|resetstat')
    return {k: v['calls'] for k, v in stats.items() if k not in skip}


def make_due(celery_app: Celery, client: redis.Redis, n: int) -> None:
    entries = [
        RedBeatSchedulerEntry(f'e{i}', 'proj.tasks.job', schedule(3600), app=celery_app)
        for i in range(n)
    ]
    save_entries(entries)
    client.zadd('redbeat::schedule', {f'redbeat:e{i}': 0 for i in range(n)})


@pytest.mark.parametrize('n', [150, 3000])
def test_a_tick_takes_four_round_trips_whatever_the_number_due(
    n: int, celery_app: Celery, redis_client: redis.Redis, make_scheduler: Make
) -> None:
    celery_app.conf.redbeat_lock_key = None  # lock renewals are not part of the count
    scheduler = make_scheduler(celery_app)
    scheduler.tick()  # start-up work done
    make_due(celery_app, redis_client, n)

    with counted_round_trips(scheduler.store.client) as trips:
        scheduler.tick()

    # load first chunk + peek, claim it, load the rest, claim the rest + peek
    assert trips[0] == 4
    ahead = redis_client.zrangebyscore('redbeat::schedule', 1, '+inf')
    assert sum(1 for m in ahead if m.startswith('redbeat:e')) == n  # every one claimed
    assert redis_client.zcount('redbeat::schedule', 0, 1) == 0


def test_an_idle_tick_is_one_round_trip_of_three_commands(
    celery_app: Celery, redis_client: redis.Redis, make_scheduler: Make
) -> None:
    celery_app.conf.redbeat_lock_key = None
    save_entries([RedBeatSchedulerEntry('later', 'proj.tasks.job', schedule(3600), app=celery_app)])
    scheduler = make_scheduler(celery_app)
    scheduler.tick()
    redis_client.config_resetstat()

    with counted_round_trips(scheduler.store.client) as trips:
        scheduler.tick()

    assert trips[0] == 1
    assert sum(commands(redis_client).values()) <= 3


def test_disabled_entries_cost_nothing_per_tick(
    celery_app: Celery, redis_client: redis.Redis, make_scheduler: Make
) -> None:
    celery_app.conf.redbeat_lock_key = None
    paused = [
        RedBeatSchedulerEntry(f'p{i}', 'proj.tasks.job', schedule(1), enabled=False, app=celery_app)
        for i in range(500)
    ]
    save_entries(paused)
    scheduler = make_scheduler(celery_app)
    scheduler.tick()
    redis_client.config_resetstat()

    scheduler.tick()

    calls = commands(redis_client)
    assert 'cmdstat_hmget' not in calls  # not one of them was read
    assert sum(calls.values()) <= 4  # idle tick, plus one ZCARD: nothing is scheduled ahead


def statics(n: int) -> dict[str, Any]:
    """``beat_schedule`` with ``n`` entries (set ``result_expires = None`` for no other)."""
    return {f's{i}': {'task': 'proj.tasks.job', 'schedule': 3600.0, 'args': [i]} for i in range(n)}


@pytest.mark.parametrize('n', [150, 3000])
def test_start_up_is_one_round_trip_whatever_the_number_of_static_entries(
    n: int, celery_app: Celery, redis_client: redis.Redis, make_scheduler: Make
) -> None:
    celery_app.conf.update(beat_schedule=statics(n), result_expires=None)
    make_scheduler(celery_app)  # the scripts are loaded
    redis_client.flushdb()  # an empty Redis (scripts stay loaded)
    redis_client.hset('redbeat:orphan', 'definition', json.dumps(ORPHAN))

    with counted_round_trips() as start:
        make_scheduler(celery_app)
    with counted_round_trips() as restart:
        make_scheduler(celery_app)

    # start: the orphan found costs its read and its ZADD; restart: nothing changed
    assert (start[0], restart[0]) == (1 + 2, 1)
    assert redis_client.zcard('redbeat::schedule') == n + 1
    assert redis_client.scard('redbeat::statics') == n


def test_start_up_with_changed_and_removed_statics_stays_constant(
    celery_app: Celery, redis_client: redis.Redis, make_scheduler: Make
) -> None:
    celery_app.conf.update(beat_schedule=statics(500), result_expires=None)
    make_scheduler(celery_app)
    changed = statics(400)
    for spec in changed.values():
        spec['args'] = ['changed']

    celery_app.conf.beat_schedule = changed
    with counted_round_trips() as trips:
        make_scheduler(celery_app)

    # one; read and write again the changed ones; delete the removed ones, forget them
    assert trips[0] == 1 + 2 + 2
    assert redis_client.zcard('redbeat::schedule') == 400
    assert json.loads(redis_client.hget('redbeat:s399', 'definition'))['args'] == ['changed']


@pytest.mark.parametrize('n', [150, 3000])
def test_a_bulk_save_is_one_round_trip_whatever_the_number(
    n: int, celery_app: Celery, redis_client: redis.Redis
) -> None:
    entries = [
        RedBeatSchedulerEntry(f'e{i}', 'proj.tasks.job', schedule(3600), app=celery_app)
        for i in range(n)
    ]
    save_entries(entries[:1])  # the scripts are loaded, a connection is open

    with counted_round_trips() as new:
        save_entries(entries)
    with counted_round_trips() as again:
        save_entries(entries)

    assert (new[0], again[0]) == (1, 1)
    assert redis_client.zcard('redbeat::schedule') == n
