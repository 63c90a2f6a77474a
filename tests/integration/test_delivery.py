"""What a crash of the leader costs, in both delivery modes (``redbeat_delivery``).

A crash is simulated in-process: the producer raises :class:`Killed` (a
``BaseException``, as nothing in beat may catch it) on its n-th publish, so
the tick stops where a SIGKILL would have stopped it.  What was claimed is
read from the entries' run counts; what was sent, from the broker queue.
The fault tests with real processes are in ``tests/ha/test_crash_loss.py``.
"""

from __future__ import annotations

import json
import os
import signal
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import redis
from celery import Celery, signals
from celery.schedules import schedule
from kombu.exceptions import BatchPublishError
from kombu.transport.redis import PublishBatch

from redbeat import RedBeatSchedulerEntry
from redbeat.codec import decode_meta
from redbeat.entry import save_entries
from redbeat.keys import Keys
from redbeat.schedulers import RedBeatScheduler

Make = Callable[..., RedBeatScheduler]


class Killed(BaseException):
    """The process died here."""


def make_due(keys: Keys, app: Celery, client: redis.Redis, n: int) -> None:
    entries = [
        RedBeatSchedulerEntry(f'e{i:03d}', 'proj.tasks.job', schedule(3600), args=[i], app=app)
        for i in range(n)
    ]
    save_entries(entries)
    client.zadd(keys.schedule, {keys.entry(f'e{i:03d}'): 0 for i in range(n)})


def claimed(keys: Keys, client: redis.Redis, n: int) -> int:
    """Occurrences claimed: the sum of the entries' run counts."""
    total = 0
    for i in range(n):
        key = keys.entry(f'e{i:03d}')
        total += decode_meta(key, client.hget(key, 'meta'))[1]  # a count of 0 is left out
    return total


def kill_at(
    scheduler: RedBeatScheduler, publishes: int, death: type[BaseException] = Killed
) -> None:
    """Make the scheduler die on its ``publishes``-th message.

    A message is handed to kombu's ``producer.publish``, or, once its kind is
    verified for direct pushes to the Redis broker, queued for its group's
    LPUSH (``Templates._push``): either is where the n-th message dies.
    """
    producer = scheduler.producer
    templates = scheduler.publisher.templates
    count = [0]

    def dying(original: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            count[0] += 1
            if count[0] == publishes:
                raise death
            return original(*args, **kwargs)

        return call

    producer.publish = dying(producer.publish)
    templates._push = dying(templates._push)  # type: ignore[method-assign]


def job(*args: Any) -> None:
    """The task's body (never run here: only its messages are counted)."""


@pytest.fixture
def app(celery_app: Celery) -> Celery:
    celery_app.conf.redbeat_lock_key = None
    celery_app.task(name='proj.tasks.job', shared=False)(job)
    return celery_app


def test_after_task_publish_fires_once_the_broker_holds_the_message(
    keys: Keys, app: Celery, redis_client: redis.Redis, broker_client: redis.Redis,
    make_scheduler: Make,
) -> None:  # fmt: skip
    scheduler = make_scheduler(app)
    scheduler.tick()
    make_due(keys, app, redis_client, 60)
    missing: list[str] = []
    seen: list[str] = []

    def check(headers: dict[str, Any] | None = None, **_: Any) -> None:
        assert headers is not None
        seen.append(headers['id'])
        queued = {json.loads(m)['headers']['id'] for m in broker_client.lrange('celery', 0, -1)}
        if headers['id'] not in queued:
            missing.append(headers['id'])

    signals.after_task_publish.connect(check, weak=False)
    try:
        scheduler.tick()
    finally:
        signals.after_task_publish.disconnect(check)
    assert len(seen) == 60
    assert scheduler.publisher.templates.counts['rendered'] > 0  # batched, from templates
    assert missing == []


def test_a_crash_mid_dispatch_loses_at_most_one_group(
    keys: Keys, app: Celery, redis_client: redis.Redis, sent: Callable[[], list[dict[str, Any]]],
    make_scheduler: Make,
) -> None:  # fmt: skip
    n = 300
    scheduler = make_scheduler(app)
    scheduler.tick()
    make_due(keys, app, redis_client, n)
    kill_at(scheduler, 150)
    with pytest.raises(Killed):
        scheduler.tick()
    ids = [h['id'] for h in sent()]
    lost = claimed(keys, redis_client, n) - len(set(ids))
    assert len(ids) == len(set(ids))
    assert 0 < lost <= scheduler.publish_group
    assert redis_client.exists(keys.journal) == 0  # at-most-once: no journal


def test_at_least_once_the_next_leader_resends_the_lost_group_with_the_same_ids(
    keys: Keys, app: Celery, redis_client: redis.Redis, sent: Callable[[], list[dict[str, Any]]],
    make_scheduler: Make,
) -> None:  # fmt: skip
    n = 300
    app.conf.redbeat_delivery = 'at-least-once'
    first = make_scheduler(app)
    first.tick()
    make_due(keys, app, redis_client, n)
    kill_at(first, 150)
    with pytest.raises(Killed):
        first.tick()
    journal = redis_client.hgetall(keys.journal)
    before = {h['id'] for h in sent()}
    # the group cut by the crash and the last one sent (removed with the next round trip)
    assert set(journal) - before and len(journal) <= 2 * first.publish_group

    second = make_scheduler(app)  # the next leader
    second.tick()
    ids = Counter(h['id'] for h in sent())
    assert len(ids) == claimed(keys, redis_client, n)  # none lost
    assert set(journal) <= set(ids)  # re-sent with the ids the first leader claimed them with
    assert all(count == 1 or task_id in journal for task_id, count in ids.items())
    second.tick()  # the confirmations go with the next round trip
    assert redis_client.hlen(keys.journal) == 0


def test_a_clean_stop_mid_dispatch_hands_back_what_was_not_sent(
    keys: Keys, app: Celery, redis_client: redis.Redis, sent: Callable[[], list[dict[str, Any]]],
    make_scheduler: Make,
) -> None:  # fmt: skip
    """SIGTERM: Celery's handler closes the scheduler and raises SystemExit mid-group."""
    n = 300
    scheduler = make_scheduler(app)
    scheduler.tick()
    make_due(keys, app, redis_client, n)
    kill_at(scheduler, 150, SystemExit)
    with pytest.raises(SystemExit):
        scheduler.tick()
    assert claimed(keys, redis_client, n) == len(sent())  # the cut group was handed back
    make_scheduler(app).tick()  # the next beat
    ids = Counter(h['id'] for h in sent())
    assert len(ids) == n == claimed(keys, redis_client, n)
    assert set(ids.values()) == {1}


def flush_then_fail(batch: PublishBatch) -> None:
    """The pipeline reaches the broker, then the connection breaks before its reply."""
    batch.pipeline.execute()
    batch._buffered = 0
    raise BatchPublishError('Redis publish batch failed; delivery is uncertain')


@pytest.mark.parametrize('mode', ['at-most-once', 'at-least-once'])
def test_a_batch_of_unknown_delivery_is_resent_only_at_least_once(
    mode: str, keys: Keys, app: Celery, redis_client: redis.Redis,
    sent: Callable[[], list[dict[str, Any]]], make_scheduler: Make,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    app.conf.redbeat_delivery = mode
    scheduler = make_scheduler(app)
    scheduler.tick()
    make_due(keys, app, redis_client, 5)
    with monkeypatch.context() as patch:
        patch.setattr(PublishBatch, 'flush', flush_then_fail)
        scheduler.tick()
    scheduler.tick()
    ids = Counter(h['id'] for h in sent())
    assert len(ids) == 5
    if mode == 'at-most-once':
        assert set(ids.values()) == {1}  # never twice
    else:
        assert set(ids.values()) == {2}  # sent again, with the same ids
        scheduler.tick()
        assert redis_client.hlen(keys.journal) == 0


def test_a_stop_between_a_claim_and_its_publish_loses_nothing(
    keys: Keys, app: Celery, redis_client: redis.Redis, sent: Callable[[], list[dict[str, Any]]],
    make_scheduler: Make, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """SIGTERM lands after a group is claimed and before its first publish.

    Celery's handler raises SystemExit where the signal lands: there, nothing
    would send the claimed group nor hand it back.  Beat takes the stop once
    the group is in the broker, so every occurrence claimed is sent.
    """
    n = 50
    scheduler = make_scheduler(app)
    scheduler.tick()
    make_due(keys, app, redis_client, n)

    def exit_now(signum: int, frame: Any) -> None:
        raise SystemExit(1)

    previous = signal.signal(signal.SIGTERM, exit_now)
    hooked = scheduler.hooked
    calls = [0]

    def signalled() -> bool:  # _send asks this right after the claim, before publishing
        calls[0] += 1
        if calls[0] == 2:  # the second group: the first is in the broker
            os.kill(os.getpid(), signal.SIGTERM)
        return hooked()

    try:
        monkeypatch.setattr(scheduler, 'hooked', signalled)
        with pytest.raises(SystemExit):
            scheduler.tick()
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert calls[0] == 2  # stopped after the second group, not later
    assert claimed(keys, redis_client, n) == len(sent()) == 2 * scheduler.publish_group
    make_scheduler(app).tick()  # the next beat sends the rest, each once
    ids = Counter(h['id'] for h in sent())
    assert len(ids) == n == claimed(keys, redis_client, n)
    assert set(ids.values()) == {1}
