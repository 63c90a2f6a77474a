"""Messages beat sends are the ones Celery's own apply_async sends.

Each entry below is sent once by a scheduler tick and once by a plain
``apply_async`` with the same arguments and options (plus the
``celery_beat_task`` header Celery's own beat adds).  The two raw broker
messages must match in every field but ids and times: routing (queue,
exchange, routing key, ``task_routes``), priority, expiry, headers,
serializer and body.  The publish signals must fire for each.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
from celery import Celery, signals
from celery.schedules import schedule

from redbeat import RedBeatSchedulerEntry
from redbeat.keys import Keys
from redbeat.schedulers import RedBeatScheduler

#: Message fields that legitimately differ between two sends of one task.
VOLATILE_HEADERS = {'id', 'root_id', 'expires', 'eta'}
VOLATILE_PROPERTIES = {'correlation_id', 'delivery_tag'}
ENTRIES: list[tuple[str, dict[str, Any]]] = [
    ('plain', {}),
    ('queued', {'queue': 'reports'}),
    ('routed', {'queue': 'prio', 'routing_key': 'prio', 'priority': 7}),
    ('expiring', {'expires': 120}),
    ('routed-by-config', {}),  # task_routes sends it to queue 'configured'
]


@pytest.fixture
def app(celery_app: Celery) -> Celery:
    celery_app.conf.redbeat_lock_key = None
    celery_app.conf.task_routes = {'proj.tasks.routed-by-config': {'queue': 'configured'}}
    for name, _ in ENTRIES:
        celery_app.task(name=f'proj.tasks.{name}', shared=False)(job)
    return celery_app


def job(*args: Any, **kwargs: Any) -> None:
    """The tasks' body (never run here: only their messages are compared)."""


def drain(broker: redis.Redis) -> dict[str, dict[str, Any]]:
    """Every message waiting in any queue list of the broker, by task name."""
    found = {}
    for key in broker.keys('*'):
        if broker.type(key) != 'list':
            continue
        for raw in broker.lrange(key, 0, -1):
            message = json.loads(raw)
            message['queue_list'] = key
            found[message['headers']['task']] = message
        broker.delete(key)
    return found


def comparable(message: dict[str, Any]) -> dict[str, Any]:
    headers = {k: v for k, v in message['headers'].items() if k not in VOLATILE_HEADERS}
    properties = {k: v for k, v in message['properties'].items() if k not in VOLATILE_PROPERTIES}
    properties['delivery_info'] = dict(properties.get('delivery_info', {}))
    return {
        'queue_list': message['queue_list'],
        'body': message['body'],
        'content-type': message['content-type'],
        'content-encoding': message['content-encoding'],
        'headers': headers,
        'properties': properties,
        'has_expires': message['headers'].get('expires') is not None,
    }


def test_beat_sends_what_apply_async_sends(
    keys: Keys, app: Celery, redis_client: redis.Redis, broker_client: redis.Redis
) -> None:
    published: list[tuple[str, str]] = []

    def before(sender: str, **_: Any) -> None:
        published.append(('before', sender))

    def after(sender: str, **_: Any) -> None:
        published.append(('after', sender))

    signals.before_task_publish.connect(before, weak=False)
    signals.after_task_publish.connect(after, weak=False)
    try:
        for name, options in ENTRIES:
            entry = RedBeatSchedulerEntry(
                name, f'proj.tasks.{name}', schedule(3600), args=[1, 'two'],
                kwargs={'three': 3.0}, options=options, app=app,
            )  # fmt: skip
            entry.save()
            redis_client.zadd(keys.schedule, {entry.key: 0})
        scheduler = RedBeatScheduler(app=app)
        scheduler.listen_for_changes = False
        scheduler.tick()
        scheduler.close()
        from_beat = drain(broker_client)

        for name, options in ENTRIES:
            headers = {**options.get('headers', {}), 'celery_beat_task': True}
            task = app.tasks[f'proj.tasks.{name}']
            task.apply_async([1, 'two'], {'three': 3.0}, **{**options, 'headers': headers})
        from_apply_async = drain(broker_client)
    finally:
        signals.before_task_publish.disconnect(before)
        signals.after_task_publish.disconnect(after)

    names = [f'proj.tasks.{name}' for name, _ in ENTRIES]
    assert sorted(from_beat) == sorted(names)
    for name in names:
        assert comparable(from_beat[name]) == comparable(from_apply_async[name]), name
    assert from_beat['proj.tasks.routed-by-config']['queue_list'] == 'configured'
    assert from_beat['proj.tasks.queued']['queue_list'] == 'reports'
    assert from_beat['proj.tasks.routed']['properties']['priority'] == 7
    # signals fired for every message beat sent, before and after publishing
    for name in names:
        assert published.count(('before', name)) == 2  # once by beat, once by apply_async
        assert published.count(('after', name)) == 2
