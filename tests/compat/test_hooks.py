"""Celery's per-entry methods: beat goes through them whenever they are hooked.

Sentry Crons (the real ``sentry-sdk``), a subclass overriding ``apply_entry``
and a wrapper patched onto the class each see every due occurrence once, with
its options, headers and deterministic task id in the message; the claim
still fences it (sent once, handed back when the broker is down).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from kombu.exceptions import OperationalError

from redbeat.entry import RedBeatSchedulerEntry
from redbeat.keys import Keys
from redbeat.schedulers import RedBeatScheduler

KEYS = Keys()
Make = Callable[..., RedBeatScheduler]

CRON = {'__type__': 'crontab', 'minute': '*', 'hour': '*', 'day_of_week': '*',
        'day_of_month': '*', 'month_of_year': '*'}  # fmt: skip
EVERY = {'__type__': 'interval', 'every': 60, 'relative': False}


def put_due(client: redis.Redis, name: str, schedule: dict[str, Any], **options: Any) -> None:
    """A hand-written entry, due now."""
    definition = {'name': name, 'task': f'proj.tasks.{name}', 'schedule': schedule,
                  'args': [1], 'kwargs': {'k': 'v'}, 'options': options}  # fmt: skip
    client.hset(KEYS.entry(name), 'definition', json.dumps(definition))
    client.zadd(KEYS.schedule, {KEYS.entry(name): 0})


def messages(broker: redis.Redis) -> list[dict[str, Any]]:
    """Every message in the broker's queues, oldest first."""
    found = []
    for key in sorted(broker.keys('*')):
        if broker.type(key) == 'list':
            found.extend(json.loads(m) for m in reversed(broker.lrange(key, 0, -1)))
    return found


@pytest.fixture
def app(celery_app: Celery) -> Celery:
    celery_app.conf.redbeat_lock_key = None
    return celery_app


def test_unhooked_scheduler_keeps_the_fast_path(app: Celery, make_scheduler: Make) -> None:
    assert not make_scheduler(app).hooked()


def test_sentry_crons_sees_every_beat_message(
    redis_client: redis.Redis, broker_client: redis.Redis, celery_app: Celery
) -> None:
    put_due(redis_client, 'cron', CRON, queue='reports')
    put_due(redis_client, 'every', EVERY, headers={'mine': 'kept'})
    script = Path(__file__).with_name('sentry_beat.py')
    root = Path(__file__).resolve().parents[2]
    urls = [celery_app.conf.redbeat_redis_url, celery_app.conf.broker_url]
    argv = [sys.executable, str(script), *urls]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=root, check=False)
    assert done.returncode == 0, done.stderr
    check_ins = json.loads(done.stdout.strip().splitlines()[-1])
    sent = messages(broker_client)
    assert sorted(m['headers']['task'] for m in sent) == ['proj.tasks.cron', 'proj.tasks.every']
    by_slug = {c['monitor_slug']: c for c in check_ins}
    assert sorted(by_slug) == ['cron', 'every'] and len(check_ins) == 2
    assert all(c['status'] == 'in_progress' for c in check_ins)
    for message in sent:
        headers = message['headers']
        name = headers['task'].rsplit('.', 1)[1]
        assert headers['sentry-monitor-slug'] == name
        assert headers['sentry-monitor-check-in-id'] == by_slug[name]['check_in_id']
        assert headers['sentry-monitor-config']['schedule']['type'] in ('crontab', 'interval')
        assert headers['celery_beat_task'] is True
    every = next(m for m in sent if m['headers']['task'] == 'proj.tasks.every')
    assert every['headers']['mine'] == 'kept'  # the entry's own headers survive
    cron = next(m for m in sent if m['headers']['task'] == 'proj.tasks.cron')
    assert cron['properties']['delivery_info']['routing_key'] == 'reports'


class Recording(RedBeatScheduler):
    """A subclass overriding apply_entry, as users and tracers write them."""

    seen: list[RedBeatSchedulerEntry]

    def apply_entry(self, entry: RedBeatSchedulerEntry, producer: Any = None) -> None:
        self.seen.append(entry)
        super().apply_entry(entry, producer=producer)


def test_subclass_apply_entry_sees_every_due_entry_once(
    app: Celery, redis_client: redis.Redis, broker_client: redis.Redis
) -> None:
    for n in range(3):
        put_due(redis_client, f'e{n}', EVERY, queue='q', priority=3)
    scheduler = Recording(app=app)
    scheduler.seen = []
    scheduler.listen_for_changes = False
    try:
        assert scheduler.hooked()
        scheduler.tick()
        scheduler.tick()  # claimed: nothing due again
    finally:
        scheduler.close()
    assert sorted(e.name for e in scheduler.seen) == ['e0', 'e1', 'e2']
    sent = messages(broker_client)
    assert len(sent) == 3
    ids = {e.options['task_id'] for e in scheduler.seen}
    assert {m['headers']['id'] for m in sent} == ids  # the deterministic occurrence ids
    for message in sent:
        assert message['properties']['priority'] == 3
        assert message['headers']['argsrepr'] == '[1]'
        assert message['headers']['celery_beat_task'] is True


def test_patch_on_the_class_is_seen_at_the_next_tick(
    app: Celery,
    redis_client: redis.Redis,
    broker_client: redis.Redis,
    make_scheduler: Make,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scheduler = make_scheduler(app)
    assert not scheduler.hooked()
    seen: list[str] = []
    original = RedBeatScheduler.apply_async

    def traced(self: RedBeatScheduler, entry: RedBeatSchedulerEntry, **kwargs: Any) -> Any:
        seen.append(entry.name)
        entry.options['headers'] = {**entry.options.get('headers', {}), 'trace': 'abc'}
        return original(self, entry, **kwargs)

    monkeypatch.setattr(RedBeatScheduler, 'apply_async', traced)
    put_due(redis_client, 'traced', EVERY)
    scheduler.tick()
    assert seen == ['traced']
    [message] = messages(broker_client)
    assert message['headers']['trace'] == 'abc'


def test_hooked_send_refused_by_the_broker_is_handed_back(
    app: Celery,
    redis_client: redis.Redis,
    broker_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Celery's apply_entry swallows send errors; the claim is handed back all the same."""
    put_due(redis_client, 'back', EVERY)
    scheduler = Recording(app=app)
    scheduler.seen = []
    scheduler.listen_for_changes = False

    def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError('broker down')

    try:
        with monkeypatch.context() as patch:
            patch.setattr(app, 'send_task', unreachable)
            scheduler.tick()
        assert messages(broker_client) == []
        assert redis_client.zscore(KEYS.schedule, KEYS.entry('back')) == 0
        scheduler.tick()
    finally:
        scheduler.close()
    assert [m['headers']['task'] for m in messages(broker_client)] == ['proj.tasks.back']
    assert [e.name for e in scheduler.seen] == ['back', 'back']


class Counting(RedBeatScheduler):
    """Changes the entry's headers in place, as Celery's beat and Sentry do."""

    def apply_entry(self, entry: RedBeatSchedulerEntry, producer: Any = None) -> None:
        headers = entry.options.setdefault('headers', {})
        headers['seen'] = headers.get('seen', 0) + 1
        super().apply_entry(entry, producer=producer)


def test_hooks_changing_headers_do_not_leak_into_later_sends(
    app: Celery, redis_client: redis.Redis, broker_client: redis.Redis
) -> None:
    put_due(redis_client, 'twice', EVERY, headers={'mine': 'kept'})
    definition = redis_client.hget(KEYS.entry('twice'), 'definition')
    scheduler = Counting(app=app)
    scheduler.listen_for_changes = False
    try:
        scheduler.tick()
        redis_client.zadd(KEYS.schedule, {KEYS.entry('twice'): 0})  # due again, same definition
        scheduler.tick()
    finally:
        scheduler.close()
    sent = messages(broker_client)
    assert [m['headers']['seen'] for m in sent] == [1, 1]
    assert all(m['headers']['mine'] == 'kept' for m in sent)
    assert redis_client.hget(KEYS.entry('twice'), 'definition') == definition
