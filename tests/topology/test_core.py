"""The core behaviours on every deployment: Redis Cluster, TLS + ACL user, Valkey.

Each test runs once per topology (see ``conftest.topology``): saving,
loading and deleting entries, a tick sending what is due, static entries,
a bad entry skipped, the leader lock, change notices and orphan adoption.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from celery import Celery
from celery.schedules import schedule

from redbeat import RedBeatSchedulerEntry
from redbeat.codec import decode_meta
from redbeat.schedulers import RedBeatScheduler
from tests.topology.conftest import Topology

pytestmark = pytest.mark.topology

Make = Callable[..., RedBeatScheduler]
Sent = Callable[[], list[dict[str, Any]]]


def definition(name: str, task: str, every: float = 60) -> str:
    return json.dumps(
        {'name': name, 'task': task, 'enabled': True, 'args': [], 'kwargs': {}, 'options': {},
         'schedule': {'__type__': 'interval', 'every': every, 'relative': False}}
    )  # fmt: skip


def put_due(topology: Topology, name: str, task: str) -> None:
    """An entry written by hand (as a redis-cli user would), due now."""
    topology.client.hset(topology.key(name), 'definition', definition(name, task))
    topology.client.zadd(topology.schedule, {topology.key(name): 0})


def test_save_load_delete(topology: Topology, topo_app: Celery) -> None:
    entry = RedBeatSchedulerEntry(
        'saved', 'proj.tasks.saved', schedule(timedelta(seconds=30)), args=[1], app=topo_app
    )
    entry.save()
    key = topology.key('saved')
    assert entry.key == key
    assert json.loads(topology.client.hget(key, 'definition'))['args'] == [1]
    assert topology.client.zscore(topology.schedule, key) is not None
    loaded = RedBeatSchedulerEntry.from_key(key, app=topo_app)
    assert (loaded.task, loaded.args) == ('proj.tasks.saved', [1])
    entry.delete()
    assert not topology.client.exists(key)
    assert topology.client.zscore(topology.schedule, key) is None


def test_tick_sends_due_entries_and_reschedules(
    topology: Topology, topo_app: Celery, make_scheduler: Make, sent: Sent
) -> None:
    scheduler = make_scheduler(topo_app)
    for i in range(3):
        put_due(topology, f'due-{i}', f'proj.tasks.t{i}')
    before = time.time()
    scheduler.tick()
    assert sorted(h['task'] for h in sent()) == ['proj.tasks.t0', 'proj.tasks.t1', 'proj.tasks.t2']
    for i in range(3):
        key = topology.key(f'due-{i}')
        assert topology.client.zscore(topology.schedule, key) > before + 50
        assert decode_meta(key, topology.client.hget(key, 'meta'))[1] == 1
    scheduler.tick()  # nothing due any more
    assert len(sent()) == 3


def test_many_due_entries_in_chunks(
    topology: Topology, topo_app: Celery, make_scheduler: Make, sent: Sent
) -> None:
    scheduler = make_scheduler(topo_app)
    scheduler.first_chunk, scheduler.chunk_size = 3, 7  # several claim+load round trips
    with topology.client.pipeline(transaction=False) as pipe:
        for i in range(25):
            pipe.hset(topology.key(f'bulk-{i}'), 'definition', definition(f'bulk-{i}', 'p.bulk'))
            pipe.zadd(topology.schedule, {topology.key(f'bulk-{i}'): 0})
        pipe.execute()
    scheduler.tick()
    assert len(sent()) == 25
    assert len({h['id'] for h in sent()}) == 25


def test_static_entries_written_and_removed(
    topology: Topology, topo_app: Celery, make_scheduler: Make
) -> None:
    topo_app.conf.beat_schedule = {
        'static-a': {'task': 'proj.tasks.a', 'schedule': 30.0},
        'static-b': {'task': 'proj.tasks.b', 'schedule': 60.0},
    }
    make_scheduler(topo_app).close()
    assert {'static-a', 'static-b'} <= topology.client.smembers(topology.prefix + ':statics')
    assert topology.client.exists(topology.key('static-b'))
    topo_app.conf.beat_schedule = {'static-a': {'task': 'proj.tasks.a', 'schedule': 30.0}}
    make_scheduler(topo_app).close()
    assert not topology.client.exists(topology.key('static-b'))
    assert topology.client.zscore(topology.schedule, topology.key('static-b')) is None
    statics = topology.client.smembers(topology.prefix + ':statics')
    assert 'static-a' in statics and 'static-b' not in statics


def test_bad_entry_is_skipped_and_left_alone(
    topology: Topology,
    topo_app: Celery,
    make_scheduler: Make,
    sent: Sent,
    caplog: pytest.LogCaptureFixture,
) -> None:
    scheduler = make_scheduler(topo_app)
    topology.client.hset(topology.key('broken'), 'definition', '{not json')
    topology.client.zadd(topology.schedule, {topology.key('broken'): 0})
    put_due(topology, 'fine', 'proj.tasks.fine')
    scheduler.tick()
    assert [h['task'] for h in sent()] == ['proj.tasks.fine']
    assert topology.client.hget(topology.key('broken'), 'definition') == '{not json'
    assert topology.client.zscore(topology.schedule, topology.key('broken')) > time.time()
    assert any(topology.key('broken') in r.getMessage() for r in caplog.records)


def test_one_leader_and_takeover_on_close(
    topology: Topology, topo_app: Celery, make_scheduler: Make, sent: Sent
) -> None:
    first, second = make_scheduler(topo_app), make_scheduler(topo_app)
    put_due(topology, 'once', 'proj.tasks.once')
    first.tick()
    second.tick()
    assert [h['task'] for h in sent()] == ['proj.tasks.once']
    assert first.leader.held and not second.leader.held
    lock = topology.client.get(topology.prefix + ':lock')
    assert lock == first.leader.token
    first.close()
    put_due(topology, 'twice', 'proj.tasks.twice')
    second.tick()
    assert second.leader.held
    assert [h['task'] for h in sent()] == ['proj.tasks.once', 'proj.tasks.twice']


def test_change_notice_wakes_a_waiting_beat(
    topology: Topology, topo_app: Celery, make_scheduler: Make
) -> None:
    scheduler = make_scheduler(topo_app, listen=True)
    scheduler.tick()  # subscribes, waits up to max_wait (nothing due)
    pubsub = scheduler.store.listen()
    try:
        time.sleep(0.1)
        RedBeatSchedulerEntry(
            'woken', 'proj.tasks.w', schedule(timedelta(seconds=30)), app=topo_app
        ).save()
        deadline = time.monotonic() + 5
        message = None
        while message is None and time.monotonic() < deadline:
            message = pubsub.get_message(timeout=0.5)
        assert message is not None and message['channel'] == topology.prefix + ':changes'
        RedBeatSchedulerEntry.from_key(topology.key('woken'), app=topo_app).delete()
        deadline = time.monotonic() + 5
        message = None
        while message is None and time.monotonic() < deadline:
            message = pubsub.get_message(timeout=0.5)
        assert message is not None and message['data'] == 'delete'
    finally:
        pubsub.close()
    started = time.monotonic()
    scheduler.tick()  # consumes the notices at once instead of waiting 5 s
    assert time.monotonic() - started < 4


def test_hash_without_schedule_member_is_adopted(
    topology: Topology, topo_app: Celery, make_scheduler: Make, sent: Sent
) -> None:
    """SCAN finds hashes written without a ZADD (on Cluster: on every primary)."""
    topology.client.hset(topology.key('orphan'), 'definition', definition('orphan', 'p.orphan'))
    scheduler = make_scheduler(topo_app)
    scheduler.tick()
    assert [h['task'] for h in sent()] == ['p.orphan']
    assert topology.client.zscore(topology.schedule, topology.key('orphan')) is not None


def test_banner_masks_passwords(topology: Topology, topo_app: Celery, make_scheduler: Make) -> None:
    info = make_scheduler(topo_app).info
    url = topology.settings['redbeat_redis_url']
    assert 'redis' in info
    if '@' in url:
        password = url.split('@')[0].rsplit(':', 1)[1]
        assert password not in info and '**' in info
