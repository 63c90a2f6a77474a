"""Round trips and commands per tick: constant, whatever the number of due entries.

Round trips are counted where the store's client takes a connection from its
pool (one per command or per pipeline); commands with INFO commandstats on
the private test servers.  Counts are exact; no timing is asserted.

On Redis Cluster every key of the schedule is in one slot, so each pipeline
and script goes to one node in one round trip: the counts are the same, and
commands are summed over the nodes.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
from celery import Celery
from celery.schedules import schedule
from redis.cluster import RedisCluster

from redbeat import RedBeatSchedulerEntry, save_entries
from redbeat.api import Schedule
from redbeat.keys import Keys
from redbeat.schedulers import RedBeatScheduler
from tests.backends import Backend

Make = Callable[..., RedBeatScheduler]
ORPHAN = {
    'name': 'orphan',
    'task': 'proj.tasks.job',
    'schedule': {'__type__': 'interval', 'every': 60},
}


@contextmanager
def counted_round_trips(client: Any = None) -> Iterator[list[int]]:
    """Connections taken from the pool of ``client`` (of each node of a RedisCluster);
    without a client, from every pool, those of clients made meanwhile too."""
    pools: list[Any]
    if client is None:
        pools = [redis.ConnectionPool]
    elif isinstance(client, RedisCluster):
        pools = [node.redis_connection.connection_pool for node in client.get_nodes()]
    else:
        pools = [client.connection_pool]
    count = [0]

    def counting(original: Callable[..., Any]) -> Callable[..., Any]:
        def get_connection(*args: Any, **kwargs: Any) -> Any:
            count[0] += 1
            return original(*args, **kwargs)

        return get_connection

    originals = [pool.get_connection for pool in pools]
    for pool, original in zip(pools, originals):
        pool.get_connection = counting(original)  # type: ignore[method-assign]
    try:
        yield count
    finally:
        for pool, original in zip(pools, originals):
            pool.get_connection = original  # type: ignore[method-assign]


def reset_stats(backend: Backend) -> None:
    for node in backend.nodes:
        node.config_resetstat()


def commands(backend: Backend) -> dict[str, int]:
    """Calls per command since :func:`reset_stats`, summed over the backend's servers."""
    skip = ('cmdstat_info', 'cmdstat_config|resetstat')
    calls: Counter[str] = Counter()
    for node in backend.nodes:
        stats = node.info('commandstats')
        calls.update({k: v['calls'] for k, v in stats.items() if k not in skip})
    return dict(calls)


def make_due(keys: Keys, celery_app: Celery, client: redis.Redis, n: int) -> None:
    entries = [
        RedBeatSchedulerEntry(f'e{i}', 'proj.tasks.job', schedule(3600), app=celery_app)
        for i in range(n)
    ]
    save_entries(entries)
    client.zadd(keys.schedule, {keys.entry(f'e{i}'): 0 for i in range(n)})


@pytest.mark.parametrize('n', [150, 3000])
def test_a_tick_takes_two_round_trips_plus_one_per_group_claimed(
    keys: Keys, n: int, celery_app: Celery, redis_client: redis.Redis, make_scheduler: Make
) -> None:
    celery_app.conf.redbeat_lock_key = None  # lock renewals are not part of the count
    scheduler = make_scheduler(celery_app)
    scheduler.tick()  # start-up work done
    make_due(keys, celery_app, redis_client, n)

    with counted_round_trips(scheduler.store.client) as trips:
        scheduler.tick()

    # load the first chunk + peek, claim and send it a group at a time, load the
    # rest, claim and send it a group at a time (the last claim peeks): a crash
    # loses at most one group, so each group is claimed once the previous is sent
    group, first = scheduler.publish_group, scheduler.first_chunk
    assert trips[0] == 2 + math.ceil(first / group) + math.ceil((n - first) / group)
    ahead = redis_client.zrangebyscore(keys.schedule, 1, '+inf')
    assert sum(1 for m in ahead if m.startswith(keys.entry('e'))) == n  # every one claimed
    assert redis_client.zcount(keys.schedule, 0, 1) == 0


def test_an_idle_tick_is_one_round_trip_of_three_commands(
    celery_app: Celery, backend: Backend, make_scheduler: Make
) -> None:
    celery_app.conf.redbeat_lock_key = None
    save_entries([RedBeatSchedulerEntry('later', 'proj.tasks.job', schedule(3600), app=celery_app)])
    scheduler = make_scheduler(celery_app)
    scheduler.tick()
    reset_stats(backend)

    with counted_round_trips(scheduler.store.client) as trips:
        scheduler.tick()

    assert trips[0] == 1
    assert 1 <= sum(commands(backend).values()) <= 3


def test_disabled_entries_cost_nothing_per_tick(
    celery_app: Celery, backend: Backend, make_scheduler: Make
) -> None:
    celery_app.conf.redbeat_lock_key = None
    paused = [
        RedBeatSchedulerEntry(f'p{i}', 'proj.tasks.job', schedule(1), enabled=False, app=celery_app)
        for i in range(500)
    ]
    save_entries(paused)
    scheduler = make_scheduler(celery_app)
    scheduler.tick()
    reset_stats(backend)

    scheduler.tick()

    calls = commands(backend)
    assert 'cmdstat_hmget' not in calls  # not one of them was read
    assert sum(calls.values()) <= 4  # idle tick, plus one ZCARD: nothing is scheduled ahead


def statics(n: int) -> dict[str, Any]:
    """``beat_schedule`` with ``n`` entries (set ``result_expires = None`` for no other)."""
    return {f's{i}': {'task': 'proj.tasks.job', 'schedule': 3600.0, 'args': [i]} for i in range(n)}


@pytest.mark.parametrize('n', [150, 3000])
def test_start_up_is_one_round_trip_whatever_the_number_of_static_entries(
    n: int,
    keys: Keys,
    backend: Backend,
    celery_app: Celery,
    redis_client: Any,
    make_scheduler: Make,
) -> None:
    if backend.name == 'cluster':
        pytest.skip(
            'on Cluster a new client first reads the slot map, and orphans are looked '
            'for with SCAN from the client on every node (a script cannot reach them)'
        )
    celery_app.conf.update(beat_schedule=statics(n), result_expires=None)
    make_scheduler(celery_app)  # the scripts are loaded
    redis_client.flushdb()  # an empty Redis (scripts stay loaded)
    redis_client.hset(keys.entry('orphan'), 'definition', json.dumps(ORPHAN))

    with counted_round_trips() as start:
        make_scheduler(celery_app)
    with counted_round_trips() as restart:
        make_scheduler(celery_app)

    # start: the orphan found costs its read and its ZADD; restart: nothing changed
    assert (start[0], restart[0]) == (1 + 2, 1)
    assert redis_client.zcard(keys.schedule) == n + 1
    assert redis_client.scard(keys.statics) == n


def test_start_up_with_changed_and_removed_statics_stays_constant(
    keys: Keys, backend: Backend, celery_app: Celery, redis_client: Any, make_scheduler: Make
) -> None:
    if backend.name == 'cluster':
        pytest.skip('on Cluster a new client first reads the slot map (and scans every node)')
    celery_app.conf.update(beat_schedule=statics(500), result_expires=None)
    make_scheduler(celery_app)
    changed = statics(400)
    for spec in changed.values():
        spec['args'] = ['changed']

    celery_app.conf.beat_schedule = changed
    with counted_round_trips() as trips:
        make_scheduler(celery_app)

    # one; write again the changed ones from the run state the first write found;
    # delete the removed ones, forget them
    assert trips[0] == 1 + 1 + 2
    assert redis_client.zcard(keys.schedule) == 400
    assert json.loads(redis_client.hget(keys.entry('s399'), 'definition'))['args'] == ['changed']


@pytest.mark.parametrize('n', [150, 3000])
def test_a_bulk_save_is_one_round_trip_whatever_the_number(
    n: int, keys: Keys, celery_app: Celery, redis_client: Any
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
    assert redis_client.zcard(keys.schedule) == n


def test_saving_a_changed_definition_takes_two_round_trips(celery_app: Celery) -> None:
    """The first write finds a run state it did not assume and hands it back
    (``save.lua``); the second writes, conditional on that run state, which is kept."""
    api = Schedule(celery_app)
    api.add('changed', 'proj.tasks.job', 3600, args=[1])
    state = api.get('changed', history=None).last_run_at
    for args in ([2], [3]):
        with counted_round_trips() as trips:
            api.add('changed', 'proj.tasks.job', 3600, args=args)
        assert trips[0] == 2
        info = api.get('changed', history=None)
        assert (info.args, info.last_run_at) == (args, state)


def test_disable_and_enable_take_two_round_trips(celery_app: Celery) -> None:
    """A read, then a write conditional on what was read (``save.lua``)."""
    api = Schedule(celery_app)
    api.add('flip', 'proj.tasks.job', 3600, args=[1])
    for enabled in (False, True, False):
        with counted_round_trips() as trips:
            api.set_enabled('flip', enabled)
        assert trips[0] == 2
        assert api.get('flip', history=None).enabled is enabled


def test_overview_is_one_round_trip_and_health_too(celery_app: Celery, redis_client: Any) -> None:
    """``redbeat status``: counts, the next due, the lock, the heartbeat and the
    eviction settings in one pipeline (on Cluster CONFIG has no key to route a
    pipeline by: two calls more)."""
    api = Schedule(celery_app)
    for i in range(3):
        api.add(f'job{i}', 'proj.tasks.job', 3600)
    api.get('job0', history=None)  # a connection is open

    with counted_round_trips() as trips:
        view = api.overview(upcoming=2)
    with counted_round_trips() as health_trips:
        api.health()

    assert trips[0] == (3 if isinstance(redis_client, RedisCluster) else 1)
    assert health_trips[0] == 1
    assert view.entries == 3
    assert [name for name, _ in view.upcoming] == ['job0', 'job1']  # saved in that order
    assert view.eviction_policy == 'noeviction'  # the test servers' setting, read in the pipeline


def test_show_is_one_round_trip(celery_app: Celery) -> None:
    """``redbeat show``: the fields, the score under either member form and the history."""
    api = Schedule(celery_app)
    api.add('shown', 'proj.tasks.job', 3600)
    api.get('shown', history=None)  # a connection is open

    with counted_round_trips() as trips:
        info = api.get('shown')

    assert trips[0] == 1
    assert info.task == 'proj.tasks.job' and info.history == ()
