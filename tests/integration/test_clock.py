"""Beat driven by its clock: hours of schedule in a test that never sleeps.

``RedBeatScheduler(clock=...)`` reads every moment it plans with from the
clock it is given, so a test moves time on instead of waiting for it; the
leader lock's TTL is Redis' own (real) time, so a dead leader's lock is
expired by hand, as its timeout would.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pytest
import redis
from celery import Celery

from redbeat.codec import decode_meta, encode_meta
from redbeat.keys import Keys
from redbeat.schedulers import RedBeatScheduler

Make = Callable[..., RedBeatScheduler]
Sent = Callable[[], list[dict[str, Any]]]


class Clock:
    """UNIX seconds that move only when told."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def put(client: redis.Redis, keys: Keys, name: str, every: float, last: float) -> None:
    client.hset(keys.entry(name), mapping={
        'definition': json.dumps({
            'name': name, 'task': 'proj.tasks.job', 'args': [name], 'kwargs': {}, 'options': {},
            'schedule': {'__type__': 'interval', 'every': every, 'relative': False},
            'enabled': True}),
        'meta': encode_meta(datetime.fromtimestamp(last, tz=timezone.utc), 1),
    })  # fmt: skip
    client.zadd(keys.schedule, {keys.entry(name): last + every})


def of(sent: Sent, name: str) -> list[dict[str, Any]]:
    """The messages of entry ``name`` (beat also sends Celery's own daily clean-up)."""
    return [h for h in sent() if h['argsrepr'] == repr([name])]


def runs(client: redis.Redis, keys: Keys, name: str) -> int:
    return decode_meta(name, client.hget(keys.entry(name), 'meta'))[1]


def test_a_day_of_an_hourly_entry_is_24_sends_without_sleeping(
    keys: Keys, celery_app: Celery, redis_client: redis.Redis, make_scheduler: Make, sent: Sent
) -> None:
    clock = Clock(float(int(time.time())))  # whole seconds: scores are kept to the microsecond
    put(redis_client, keys, 'hourly', 3600, last=clock.now - 3600)  # due now
    beat = make_scheduler(celery_app, clock=clock)

    for _ in range(24):
        beat.tick()
        beat.tick()  # a second tick at the same moment sends nothing more
        clock.now += 3600

    assert len(of(sent, 'hourly')) == 24
    assert runs(redis_client, keys, 'hourly') == 25
    assert redis_client.zscore(keys.schedule, keys.entry('hourly')) == clock.now  # due again


def test_a_standby_takes_over_a_dead_leader_and_sends_each_occurrence_once(
    keys: Keys, celery_app: Celery, redis_client: redis.Redis, make_scheduler: Make, sent: Sent
) -> None:
    """The in-process form of the failover tests: two beats on one clock."""
    clock = Clock(float(int(time.time())))  # whole seconds: scores are kept to the microsecond
    put(redis_client, keys, 'fast', 10, last=clock.now - 10)
    leader = make_scheduler(celery_app, clock=clock)
    standby = make_scheduler(celery_app, clock=clock)

    leader.tick()
    standby.tick()  # not the leader: sends nothing
    assert len(of(sent, 'fast')) == 1 and leader.leader.held and not standby.leader.held

    clock.now += 10
    leader.tick()
    assert len(of(sent, 'fast')) == 2

    # The leader dies; its lock expires (Redis' own clock: by hand) while 3.5
    # periods pass on the beats' clock.
    redis_client.delete(celery_app.conf.get('redbeat_lock_key') or keys.default_lock)
    clock.now += 35
    standby.tick()
    standby.tick()

    assert standby.leader.held
    assert (
        len(of(sent, 'fast')) == 3
    )  # the missed occurrences collapse into one run (policy 'once')
    assert runs(redis_client, keys, 'fast') == 4
    # the run is recorded when its message is expected to leave (beat's send estimate)
    following = redis_client.zscore(keys.schedule, keys.entry('fast'))
    assert following == pytest.approx(clock.now + 10, abs=RedBeatScheduler.send_estimate * 2)


class Kernel:
    """Beat's wait on the changes channel served as Linux may serve a poll: the
    beat's clock moves on by the timeout, plus, ``late``, the most the kernel may
    add (Python rounds the timeout up to a millisecond; select/poll timer slack
    is 0.1 % of it).  The read itself is real, without blocking."""

    def __init__(self, clock: Clock, pubsub: Any, late: bool) -> None:
        self.clock = clock
        self.read = pubsub.get_message
        self.late = late
        self.polls: list[float] = []

    def get_message(self, timeout: float) -> Any:
        self.polls.append(timeout)
        self.clock.now += timeout + (timeout * 0.001 + 0.001 if self.late else 0.0)
        return self.read(timeout=0)

    def sleep(self, seconds: float) -> None:
        self.clock.now += seconds  # nanosleep: microseconds of slack, none here


@pytest.mark.parametrize('late', [False, True], ids=['poll-on-time', 'poll-late'])
def test_beat_wakes_at_the_due_instant_not_after_it(
    late: bool,
    keys: Keys,
    celery_app: Celery,
    redis_client: redis.Redis,
    make_scheduler: Make,
    sent: Sent,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A single poll until the due instant woke beat up to 0.1 % of the wait plus
    a millisecond after it (4-5 ms for the lock's 3.3 s renewal period), every burst."""
    clock = Clock(float(int(time.time())))
    put(redis_client, keys, 'aligned', 10, last=clock.now - 7.5)  # due in 2.5 s
    due = clock.now + 2.5
    beat = make_scheduler(celery_app, listen=True, clock=clock)
    beat._changes = beat.store.listen()
    kernel = Kernel(clock, beat._changes, late)
    monkeypatch.setattr(beat._changes, 'get_message', kernel.get_message)
    beat._sleep = kernel.sleep

    assert beat.tick() == 0.0  # nothing due: waited on the channel for the entry
    assert kernel.polls, 'the wait listened for changes'
    assert clock.now == pytest.approx(due, abs=1e-9)

    beat.tick()
    assert len(of(sent, 'aligned')) == 1
