"""A long tick against a real Redis: the lock is kept, and late runs are not bunched.

Both tests make one tick last longer than matters (the lock's timeout, an
entry's half period) by slowing planning or publishing on purpose, then read
what Redis and the broker hold.
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

import pytest
import redis
from celery import Celery

from redbeat import timing
from redbeat.codec import encode_meta
from redbeat.keys import Keys
from redbeat.publish import Message, Outcome
from redbeat.schedulers import RedBeatScheduler

UTC = timezone.utc
Make = Callable[..., RedBeatScheduler]
Sent = Callable[[], list[dict[str, Any]]]


def put_many(client: Any, keys: Keys, count: int, every: float, late: float) -> float:
    """``count`` interval entries whose occurrence fell due ``late`` seconds ago."""
    due = time.time() - late
    with client.pipeline(transaction=False) as pipe:
        for i in range(count):
            name = f'e{i:05d}'
            body = {'name': name, 'task': 'proj.tasks.job',
                    'schedule': {'__type__': 'interval', 'every': every, 'relative': False},
                    'args': [], 'kwargs': {}, 'options': {}, 'enabled': True}  # fmt: skip
            last = datetime.fromtimestamp(due - every, tz=UTC)
            pipe.hset(keys.entry(name), mapping={
                'definition': json.dumps(body), 'meta': encode_meta(last, 1)})  # fmt: skip
            pipe.zadd(keys.schedule, {keys.entry(name): due})
        pipe.execute()
    return due


def test_planning_slower_than_the_lock_timeout_keeps_the_lock(
    keys: Keys,
    celery_app: Celery,
    redis_client: redis.Redis,
    make_scheduler: Make,
    sent: Sent,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Planning takes three lock timeouts: the lock is renewed meanwhile, every entry is
    sent once, and this beat still holds the lock afterwards."""
    count, timeout = 600, 1.2
    scheduler = make_scheduler(celery_app, lock_timeout=timeout)
    scheduler.tick()  # takes the lock; nothing due yet
    put_many(redis_client, keys, count, every=60, late=0.5)
    real = timing.plan_run

    def slow(*args: Any, **kwargs: Any) -> timing.RunPlan:
        time.sleep(3 * timeout / count)
        return real(*args, **kwargs)

    monkeypatch.setattr(timing, 'plan_run', slow)
    started = time.monotonic()
    scheduler.tick()
    assert time.monotonic() - started > 3 * timeout  # really outlived the timeout
    headers = sent()
    assert len(headers) == count
    assert len({h['id'] for h in headers}) == count
    assert scheduler.leader.held
    assert redis_client.get(scheduler.config.lock_key) == scheduler.leader.token
    assert redis_client.zcount(keys.schedule, 0, time.time()) == 0  # nothing left due


def test_runs_sent_late_in_a_long_tick_are_not_bunched_with_their_next(
    keys: Keys,
    celery_app: Celery,
    redis_client: redis.Redis,
    make_scheduler: Make,
    sent: Sent,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every 2 s, all due 0.7 s ago, a tick that takes about 2 s to publish them: each
    entry's next run is at least half a period (1 s) after its message left."""
    count, every = 1000, 2.0
    scheduler = make_scheduler(celery_app, lock_timeout=60)
    scheduler.chunk_size = 200
    scheduler.tick()
    due = put_many(redis_client, keys, count, every=every, late=0.7)
    left_at: dict[str, float] = {}
    real = scheduler.publisher.send

    def slow_send(
        messages: Sequence[Message], between_groups: Callable[[], None], **kwargs: Any
    ) -> Outcome:
        time.sleep(0.002 * len(messages))  # a slow broker
        outcome = real(messages, between_groups, **kwargs)
        done = time.time()  # every message of the group has left by now
        left_at.update((m.key, done) for m in messages)
        return outcome

    monkeypatch.setattr(scheduler.publisher, 'send', slow_send)
    scheduler.tick()
    assert len(sent()) == count == len(left_at)
    scores = dict(redis_client.zrange(keys.schedule, 0, -1, withscores=True))
    margins = sorted(scores[key] - left for key, left in left_at.items())
    assert max(left_at.values()) - due > every  # the last left after its next was due
    assert margins[0] >= every / 2 - 0.05, margins[:5]


def test_the_garbage_collector_is_paused_while_a_tick_dispatches(
    keys: Keys,
    celery_app: Celery,
    redis_client: redis.Redis,
    make_scheduler: Make,
    sent: Sent,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Planning and sending run with Python's cyclic collector off; it is on again after
    the tick, after a tick that failed midway, and stays off if the application turned
    it off."""
    scheduler = make_scheduler(celery_app, lock_timeout=60)
    scheduler.tick()
    seen: list[bool] = []
    real_plan, real_send = timing.plan_run, scheduler.publisher.send

    def plan(*args: Any, **kwargs: Any) -> timing.RunPlan:
        seen.append(gc.isenabled())
        return real_plan(*args, **kwargs)

    def send(messages: Sequence[Message], between_groups: Callable[[], None],
             **kwargs: Any) -> Outcome:  # fmt: skip
        seen.append(gc.isenabled())
        return real_send(messages, between_groups, **kwargs)

    monkeypatch.setattr(timing, 'plan_run', plan)
    monkeypatch.setattr(scheduler.publisher, 'send', send)
    assert gc.isenabled()
    put_many(redis_client, keys, 50, every=60, late=0.5)
    scheduler.tick()
    assert len(sent()) == 50
    assert seen and not any(seen)  # planned and sent with the collector off
    assert gc.isenabled()

    def broken_claim(*args: Any, **kwargs: Any) -> Any:
        assert not gc.isenabled()
        raise redis.ConnectionError('the server went away mid-tick')

    monkeypatch.setattr(scheduler.store, 'claim', broken_claim)
    put_many(redis_client, keys, 5, every=60, late=0.5)
    assert scheduler.tick() > 0  # survived: backs off
    assert gc.isenabled()

    monkeypatch.undo()
    gc.disable()
    try:
        put_many(redis_client, keys, 5, every=60, late=0.5)
        scheduler.tick()
        assert not gc.isenabled()
    finally:
        gc.enable()
