"""The message fast path (redbeat.templates) sends exactly what apply_async sends.

Several entries of each kind (task + options), each with its own arguments,
are sent by one scheduler tick; then the same calls are made with a plain
``apply_async`` (or ``send_task``).  The raw broker messages must match in
every field but ids and times.  Three entries per kind take every path: the
first is recorded by Celery, the second recorded and used to verify the
kind, the rest rendered from the template.  The counters of
:class:`~redbeat.templates.Templates` show which path each message took, so
a test fails if the fast path silently stopped being used (or was used where
it must not be).
"""

from __future__ import annotations

import base64
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from celery import Celery, Task, signals
from celery.schedules import schedule
from kombu import Exchange, Queue
from kombu.transport import pyamqp as kombu_pyamqp
from kombu.transport import redis as kombu_redis

from redbeat import RedBeatSchedulerEntry, direct, save_entries
from redbeat.compat import context_for
from redbeat.schedulers import RedBeatScheduler
from tests.redis_server import RedisServer

VOLATILE_HEADERS = {'id', 'root_id', 'expires', 'eta'}
VOLATILE_PROPERTIES = {'correlation_id', 'delivery_tag'}
#: Arguments of the entries of each kind (one entry each); a quote and a
#: nested value exercise Celery's saferepr.
ARGUMENTS: list[tuple[list[Any], dict[str, Any]]] = [
    ([1, 'two'], {'three': 3.0}),
    ([2, "it's"], {'nested': {'a': [1, 2, {'b': None}]}}),
    ([], {}),
    ([4, True, None, 'x' * 40], {'k': 'v'}),
]
#: Kinds that must take the fast path: options, and the route task_routes gives.
FAST_KINDS: dict[str, dict[str, Any]] = {
    'plain': {},
    'queued': {'queue': 'reports'},
    'routed': {'queue': 'prio', 'routing_key': 'prio', 'priority': 7},
    'by-config': {},  # task_routes sends it to queue 'configured'
    'by-glob': {},  # task_routes 'fast.glob.*' sends it to queue 'globbed'
    'compressed': {'compression': 'zlib', 'serializer': 'json'},
    'headed': {'headers': {'tenant': 'acme'}, 'time_limit': 30, 'soft_time_limit': 20},
    'quiet': {'ignore_result': True},
    'remote': {},  # not registered here: sent by name with send_task
}
#: Kinds that must take apply_async every time after the first (clock-dependent).
CLOCK_KINDS: dict[str, dict[str, Any]] = {'expiring': {'expires': 120}}


class Custom(Task):  # type: ignore[misc]
    """A task class with its own apply_async: the fast path must leave it alone."""

    def apply_async(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        headers = {**(options.pop('headers', None) or {}), 'custom': 'yes'}
        return super().apply_async(args, kwargs, headers=headers, **options)


def task_name(kind: str) -> str:
    return f'fast.glob.{kind}' if kind == 'by-glob' else f'fast.tasks.{kind}'


def job() -> Callable[..., None]:
    """A task body (never run here: only the messages are compared)."""

    def body(*args: Any, **kwargs: Any) -> None:
        return None

    return body


def strict(a: int, b: int) -> None:
    """A task taking exactly two arguments."""


@pytest.fixture
def app(celery_app: Celery) -> Celery:
    celery_app.conf.redbeat_lock_key = None
    celery_app.conf.result_expires = None  # no celery.backend_cleanup entry
    celery_app.conf.task_routes = [
        {'fast.tasks.by-config': {'queue': 'configured'}},
        {'fast.glob.*': {'queue': 'globbed'}},
    ]
    for kind in [*FAST_KINDS, *CLOCK_KINDS, 'custom', 'typed']:
        if kind == 'remote':
            continue
        base = Custom if kind == 'custom' else Task
        celery_app.task(name=task_name(kind), base=base, shared=False)(job())
    celery_app.task(name='fast.tasks.typed-strict', shared=False)(strict)
    return celery_app


@pytest.fixture
def broker(redis_server: RedisServer, redis_url: str) -> Iterator[redis.Redis]:
    client = redis_server.client(db=1, decode_responses=True)
    yield client
    client.close()


def drain(broker: redis.Redis) -> dict[str, list[dict[str, Any]]]:
    """Every message in any queue list of the broker, comparable, by task name."""
    found: dict[str, list[dict[str, Any]]] = {}
    for key in broker.keys('*'):
        if broker.type(key) != 'list':
            continue
        for raw in broker.lrange(key, 0, -1):
            message = json.loads(raw)
            found.setdefault(message['headers']['task'], []).append(comparable(key, message))
        broker.delete(key)
    for messages in found.values():
        messages.sort(key=lambda m: m['body'])
    return found


def comparable(queue: str, message: dict[str, Any]) -> dict[str, Any]:
    headers = {k: v for k, v in message['headers'].items() if k not in VOLATILE_HEADERS}
    properties = {k: v for k, v in message['properties'].items() if k not in VOLATILE_PROPERTIES}
    body = base64.b64decode(message['body'])
    return {
        'queue': queue,
        'body': body,
        'content-type': message['content-type'],
        'content-encoding': message['content-encoding'],
        'headers': headers,
        'properties': properties,
        'has_expires': message['headers'].get('expires') is not None,
        'ids_agree': message['headers']['id']
        == message['headers']['root_id']
        == message['properties']['correlation_id'],
    }


def save_kinds(app: Celery, kinds: dict[str, dict[str, Any]]) -> None:
    entries = [
        RedBeatSchedulerEntry(
            f'{kind}-{i}',
            task_name(kind),
            schedule(3600),
            args=args,
            kwargs=kwargs,
            options=options,
            app=app,
        )
        for kind, options in kinds.items()
        for i, (args, kwargs) in enumerate(ARGUMENTS)
    ]
    save_entries(entries)
    make_all_due(app)


def make_all_due(app: Celery) -> None:
    store = context_for(app).store
    schedule_key = store.keys.schedule
    members = store.client.zrange(schedule_key, 0, -1)
    store.client.zadd(schedule_key, dict.fromkeys(members, 0))


def tick(app: Celery) -> RedBeatScheduler:
    scheduler = RedBeatScheduler(app=app)
    scheduler.listen_for_changes = False
    scheduler.tick()
    scheduler.close()
    return scheduler


def apply_async_all(app: Celery, kinds: dict[str, dict[str, Any]]) -> None:
    for kind, options in kinds.items():
        headers = {**options.get('headers', {}), 'celery_beat_task': True}
        for args, kwargs in ARGUMENTS:
            if kind == 'remote':
                app.send_task(task_name(kind), args, kwargs, **{**options, 'headers': headers})
            else:
                task = app.tasks[task_name(kind)]
                task.apply_async(args, kwargs, **{**options, 'headers': headers})


def assert_same_messages(from_beat: dict[str, Any], from_celery: dict[str, Any]) -> None:
    assert sorted(from_beat) == sorted(from_celery)
    for name in from_celery:
        assert len(from_beat[name]) == len(from_celery[name]) == len(ARGUMENTS), name
        for beat, celery in zip(from_beat[name], from_celery[name]):
            differing = {k: (beat['headers'].get(k), celery['headers'].get(k))
                         for k in beat['headers'].keys() | celery['headers'].keys()
                         if beat['headers'].get(k) != celery['headers'].get(k)}  # fmt: skip
            assert not differing, (name, differing)
            assert beat == celery, name
            assert beat['ids_agree'], name


@pytest.fixture
def after_signals() -> Iterator[Counter[str]]:
    """Count after_task_publish per task (beat fires it itself on the fast path)."""
    seen: Counter[str] = Counter()

    def after(sender: str, headers: dict[str, Any], **_: Any) -> None:
        seen[sender] += 1
        assert headers['task'] == sender

    signals.after_task_publish.connect(after, weak=False)
    yield seen
    signals.after_task_publish.disconnect(after)


def test_fast_path_messages_equal_apply_async(
    app: Celery, broker: redis.Redis, after_signals: Counter[str]
) -> None:
    kinds = {**FAST_KINDS, **CLOCK_KINDS, 'custom': {}}
    save_kinds(app, kinds)
    scheduler = tick(app)
    declared_by_beat = set(broker.keys('_kombu.binding.*'))
    from_beat = drain(broker)
    apply_async_all(app, kinds)
    from_celery = drain(broker)

    assert_same_messages(from_beat, from_celery)
    # beat's (new) connection declared every queue it sent to: kombu's redis
    # transport keeps the bindings in sets
    # (a list named 'prio\x06\x166' is queue 'prio' at priority 6)
    used = {m['queue'].split('\x06\x16')[0] for messages in from_beat.values() for m in messages}
    assert used == {'celery', 'reports', 'prio', 'configured', 'globbed'}
    assert {f'_kombu.binding.{queue}' for queue in used} <= declared_by_beat
    # the routes were honoured (not only equal)
    queues = {name: {m['queue'] for m in messages} for name, messages in from_beat.items()}
    assert queues['fast.tasks.by-config'] == {'configured'}
    assert queues['fast.glob.by-glob'] == {'globbed'}
    assert queues['fast.tasks.queued'] == {'reports'}
    assert {m['headers']['custom'] for m in from_beat['fast.tasks.custom']} == {'yes'}
    # the after signal fired once per message, beat's and apply_async's
    assert all(after_signals[name] == 2 * len(ARGUMENTS) for name in from_beat)
    # which way each message went: per fast kind two recordings then renders;
    # clock kinds one recording then apply_async; custom always apply_async
    counts = scheduler.publisher.templates.counts
    rendered_per_kind = len(ARGUMENTS) - 2
    assert counts['rendered'] == rendered_per_kind * len(FAST_KINDS)
    assert counts['recorded'] == 2 * len(FAST_KINDS) + len(CLOCK_KINDS)
    assert counts['apply_async'] == (len(ARGUMENTS) - 1) * len(CLOCK_KINDS) + len(ARGUMENTS)


def test_kind_whose_headers_depend_on_arguments_is_recorded_per_entry(
    app: Celery, broker: redis.Redis
) -> None:
    """An argsrepr option makes the header not what rendering gives: verification catches it."""
    kinds = {'plain': {'argsrepr': '<hidden>', 'kwargsrepr': '<hidden>'}}
    save_kinds(app, kinds)
    scheduler = tick(app)
    from_beat = drain(broker)
    apply_async_all(app, kinds)
    assert_same_messages(from_beat, drain(broker))
    assert {m['headers']['argsrepr'] for m in from_beat['fast.tasks.plain']} == {'<hidden>'}
    counts = scheduler.publisher.templates.counts
    assert counts['recorded'] == len(ARGUMENTS) and counts['rendered'] == 0

    # A second tick replays each entry's own recording, stamped with new ids.
    make_all_due(app)
    scheduler.tick()
    assert_same_messages(drain(broker), from_beat)


def test_second_tick_renders_everything_with_fresh_ids(app: Celery, broker: redis.Redis) -> None:
    kinds = {'plain': {}, 'remote': {}}
    save_kinds(app, kinds)
    scheduler = RedBeatScheduler(app=app)
    scheduler.listen_for_changes = False
    scheduler.tick()
    first_ids = {json.loads(raw)['headers']['id'] for raw in broker.lrange('celery', 0, -1)}
    first = drain(broker)
    counts = scheduler.publisher.templates.counts
    assert counts['rendered'] == 2 * (len(ARGUMENTS) - 2)
    make_all_due(app)
    scheduler.tick()
    second_ids = {json.loads(raw)['headers']['id'] for raw in broker.lrange('celery', 0, -1)}
    second = drain(broker)
    scheduler.close()
    assert len(second_ids) == 2 * len(ARGUMENTS) and not first_ids & second_ids
    # the first tick verified both kinds' envelopes: the second pushes every message directly
    assert counts['rendered'] == 2 * (len(ARGUMENTS) - 2)
    assert counts['pushed'] == 2 * len(ARGUMENTS)
    assert_same_messages(second, first)


def test_before_task_publish_receiver_sends_through_apply_async(
    app: Celery, broker: redis.Redis
) -> None:
    """A before_task_publish receiver may change headers: every message goes through Celery."""
    received: list[str] = []

    def before(sender: str, headers: dict[str, Any], **_: Any) -> None:
        headers['traced'] = 'by-receiver'
        received.append(sender)

    kinds = {'plain': {}}
    save_kinds(app, kinds)
    signals.before_task_publish.connect(before, weak=False)
    try:
        scheduler = tick(app)
    finally:
        signals.before_task_publish.disconnect(before)
    from_beat = drain(broker)['fast.tasks.plain']
    assert [m['headers']['traced'] for m in from_beat] == ['by-receiver'] * len(ARGUMENTS)
    assert received == ['fast.tasks.plain'] * len(ARGUMENTS)
    counts = scheduler.publisher.templates.counts
    assert counts['rendered'] == counts['recorded'] == 0


def test_wrong_arguments_are_refused_as_apply_async_refuses_them(
    app: Celery, broker: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """A rendered send checks the arguments against the task's signature, as apply_async does."""
    good = [
        RedBeatSchedulerEntry(
            f'typed-{i}', 'fast.tasks.typed-strict', schedule(3600), args=[i, i], app=app
        )
        for i in range(3)
    ]
    bad = RedBeatSchedulerEntry('typed-bad', 'fast.tasks.typed-strict', schedule(3600),
                                args=[1, 2, 3], app=app)  # fmt: skip
    save_entries([*good, bad])
    make_all_due(app)
    # all due at score 0, sent in member order: typed-bad comes last, so the kind
    # is verified by then and typed-bad is rendered, not recorded by Celery
    with pytest.raises(TypeError):
        app.tasks['fast.tasks.typed-strict'].apply_async([1, 2, 3])
    with caplog.at_level(logging.INFO):
        scheduler = tick(app)
    sent = drain(broker)['fast.tasks.typed-strict']
    assert sorted(json.loads(m['body'])[0] for m in sent) == [[i, i] for i in range(3)]
    # typed-bad was rendered (it raised there); its group was then sent again one by one
    assert scheduler.publisher.templates.counts['rendered'] >= 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any('typed-bad' in line and 'skipped' in line for line in errors), errors


def test_result_backend_hook_runs_once_per_message_as_in_celery(
    app: Celery, broker: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Celery tells the result backend of each task id it sends unless results are ignored."""
    told: list[str] = []
    monkeypatch.setattr(app.backend, 'on_task_call', lambda producer, task_id: told.append(task_id))
    save_kinds(app, {'plain': {}, 'quiet': {'ignore_result': True}})
    scheduler = tick(app)
    sent: dict[str, list[str]] = {'fast.tasks.plain': [], 'fast.tasks.quiet': []}
    for raw in broker.lrange('celery', 0, -1):
        headers = json.loads(raw)['headers']
        sent[headers['task']].append(headers['id'])
    assert scheduler.publisher.templates.counts['rendered'] == 2 * (len(ARGUMENTS) - 2)
    assert sorted(told) == sorted(sent['fast.tasks.plain'])  # once each, none for 'quiet'
    assert len(sent['fast.tasks.quiet']) == len(ARGUMENTS)


def test_messages_do_not_share_mutable_headers(app: Celery, broker: redis.Redis) -> None:
    """A receiver changing one message's headers must not change the next message."""

    def after(sender: str, headers: dict[str, Any], **_: Any) -> None:
        headers['timelimit'].append('changed')
        headers['stamps']['changed'] = True

    save_kinds(app, {'plain': {}})
    signals.after_task_publish.connect(after, weak=False)
    try:
        scheduler = tick(app)
    finally:
        signals.after_task_publish.disconnect(after)
    assert scheduler.publisher.templates.counts['rendered'] == len(ARGUMENTS) - 2
    for message in drain(broker)['fast.tasks.plain']:
        assert message['headers']['timelimit'] == [None, None]
        assert message['headers']['stamps'] == {}


# --- direct pushes to the Redis broker (redbeat.direct) ----------------------

#: Kinds whose messages kombu's redis transport writes in a way redbeat.direct
#: models: after the first tick verified them, every message is pushed directly.
PUSHED_KINDS = {k: v for k, v in FAST_KINDS.items() if k != 'compressed'}


def raw_messages(broker: redis.Redis) -> dict[str, list[str]]:
    """Every queue list's texts, ids made neutral, sorted; the lists are emptied.

    Only the per-message ids differ between two sends of one message: the
    task id (``id``, ``root_id``, ``correlation_id``) and kombu's
    ``delivery_tag``.  Everything else is compared as the text in Redis.
    """
    found: dict[str, list[str]] = {}
    for key in broker.keys('*'):
        if broker.type(key) != 'list':
            continue
        for raw in broker.lrange(key, 0, -1):
            message = json.loads(raw)
            task_id, tag = message['headers']['id'], message['properties']['delivery_tag']
            assert raw.count(tag) == 1, raw
            found.setdefault(key, []).append(raw.replace(task_id, '<id>').replace(tag, '<tag>'))
        broker.delete(key)
    return {key: sorted(texts) for key, texts in found.items()}


def verified(
    app: Celery, kinds: dict[str, dict[str, Any]], broker: redis.Redis
) -> RedBeatScheduler:
    """A scheduler whose first tick sent (and verified) every kind; the broker emptied."""
    save_kinds(app, kinds)
    scheduler = RedBeatScheduler(app=app)
    scheduler.listen_for_changes = False
    scheduler.tick()
    raw_messages(broker)
    make_all_due(app)
    return scheduler


def test_direct_pushes_equal_kombus_text_byte_for_byte(
    app: Celery, broker: redis.Redis, after_signals: Counter[str]
) -> None:
    """Second tick: every message pushed directly; the texts are kombu's own but for the ids."""
    scheduler = verified(app, FAST_KINDS, broker)
    counts = scheduler.publisher.templates.counts
    assert counts['pushed'] == 0  # the first tick learnt from kombu's pushes
    scheduler.tick()
    scheduler.close()
    from_beat = raw_messages(broker)
    apply_async_all(app, FAST_KINDS)
    from_celery = raw_messages(broker)

    assert sorted(from_beat) == sorted(from_celery)
    for key in from_celery:
        assert from_beat[key] == from_celery[key], key
    assert 'prio\x06\x166' in from_beat  # priority 7: kombu's list for priority step 6
    assert counts['pushed'] == len(ARGUMENTS) * len(PUSHED_KINDS)
    # compressed bodies are not modelled: that kind stays with kombu (rendered, then
    # published in the same groups as the pushes)
    assert counts['rendered'] == (len(ARGUMENTS) - 2) * len(FAST_KINDS) + len(ARGUMENTS)
    # the after signal: once per message of either tick, and of apply_async
    assert all(after_signals[task_name(kind)] == 3 * len(ARGUMENTS) for kind in FAST_KINDS)


def test_exchanges_direct_are_pushed_others_stay_with_kombu(
    app: Celery, broker: redis.Redis
) -> None:
    """A direct exchange is routed by its bindings (read once per group); a topic one is kombu's."""
    app.conf.task_queues = [
        Queue('celery'),
        Queue('bound', Exchange('bx', type='direct'), routing_key='bx.key'),
        Queue('topical', Exchange('tx', type='topic'), routing_key='t.#'),
    ]
    kinds = {
        'plain': {'queue': 'bound', 'exchange': 'bx', 'routing_key': 'bx.key'},
        'quiet': {'queue': 'topical', 'exchange': 'tx', 'routing_key': 't.a'},
    }
    scheduler = verified(app, kinds, broker)
    scheduler.tick()
    scheduler.close()
    from_beat = raw_messages(broker)
    apply_async_all(app, kinds)
    assert from_beat == raw_messages(broker)
    assert sorted(from_beat) == ['bound', 'topical']
    counts = scheduler.publisher.templates.counts
    assert counts['pushed'] == len(ARGUMENTS)  # 'bound' only
    assert json.loads(broker_text := from_beat['bound'][0])['properties']['delivery_info'] == {
        'exchange': 'bx',
        'routing_key': 'bx.key',
    }, broker_text


def test_memory_broker_is_never_pushed_to(app: Celery) -> None:
    """Only kombu's plain Redis transport is modelled: any other broker keeps kombu's publish."""
    app.conf.broker_url = 'memory://'
    save_kinds(app, {'plain': {}})
    scheduler = RedBeatScheduler(app=app)
    scheduler.listen_for_changes = False
    for _ in range(2):
        make_all_due(app)
        scheduler.tick()
    assert direct.channel_of(scheduler.producer) is None
    counts = scheduler.publisher.templates.counts
    assert counts['rendered'] == 2 * len(ARGUMENTS) - 2 and counts['pushed'] == 0
    with app.connection_for_write() as connection:
        assert connection.default_channel.queue_purge('celery') == 2 * len(ARGUMENTS)
    scheduler.close()


def test_sentinel_and_subclassed_channels_are_not_pushed_to() -> None:
    """The channel must be exactly kombu's Redis channel (sentinel, amqp: kombu publishes)."""

    class Producer:
        exchange = Exchange('')

        def __init__(self, channel: Any) -> None:
            self.channel = channel

    sentinel = object.__new__(kombu_redis.SentinelChannel)
    assert direct.channel_of(Producer(sentinel)) is None
    amqp = object.__new__(kombu_pyamqp.Channel)  # RabbitMQ: kombu's own publish
    assert direct.channel_of(Producer(amqp)) is None


def test_before_task_publish_receiver_stops_direct_pushes(app: Celery, broker: redis.Redis) -> None:
    """A receiver connected after the kinds were verified gets every message, through Celery."""
    scheduler = verified(app, {'plain': {}}, broker)
    received: list[str] = []

    def before(sender: str, headers: dict[str, Any], **_: Any) -> None:
        headers['traced'] = 'by-receiver'
        received.append(sender)

    signals.before_task_publish.connect(before, weak=False)
    try:
        scheduler.tick()
    finally:
        signals.before_task_publish.disconnect(before)
    scheduler.close()
    sent = [json.loads(raw) for raw in broker.lrange('celery', 0, -1)]
    assert [m['headers']['traced'] for m in sent] == ['by-receiver'] * len(ARGUMENTS)
    assert received == ['fast.tasks.plain'] * len(ARGUMENTS)
    assert scheduler.publisher.templates.counts['pushed'] == 0


def write_then_fail(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The direct group's pipeline reaches the broker, then the connection breaks."""
    original = redis.client.Pipeline.execute
    failed: list[int] = []

    def execute(self: redis.client.Pipeline, raise_on_error: bool = True) -> Any:
        pushes = any(args[0] == 'LPUSH' for args, _ in self.command_stack)
        result = original(self, raise_on_error)
        if pushes:
            failed.append(1)
            raise redis.ConnectionError('connection lost before the reply')
        return result

    monkeypatch.setattr(redis.client.Pipeline, 'execute', execute)
    return failed


@pytest.mark.parametrize('mode', ['at-most-once', 'at-least-once'])
def test_a_direct_group_of_unknown_delivery_is_resent_only_at_least_once(
    mode: str, app: Celery, broker: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a kombu batch whose flush broke: never twice by default, re-sent with its ids if asked."""
    app.conf.redbeat_delivery = mode
    scheduler = verified(app, {'plain': {}}, broker)
    with monkeypatch.context() as patch:
        failed = write_then_fail(patch)
        scheduler.tick()
    assert failed == [1]
    assert scheduler.publisher.templates.counts['pushed'] == len(ARGUMENTS)
    scheduler.tick()  # at least once: the journal is re-sent now
    scheduler.close()
    ids = Counter(json.loads(raw)['headers']['id'] for raw in broker.lrange('celery', 0, -1))
    assert len(ids) == len(ARGUMENTS)
    assert set(ids.values()) == ({1} if mode == 'at-most-once' else {2})


def test_broker_down_before_a_direct_group_hands_it_back(
    app: Celery, broker: redis.Redis, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """The bindings cannot be read (broker unreachable): nothing pushed, the claims handed back."""
    app.conf.task_queues = [Queue('bound', Exchange('bx', type='direct'), routing_key='bx.key')]
    kind = {'queue': 'bound', 'exchange': 'bx', 'routing_key': 'bx.key'}
    scheduler = verified(app, {'plain': kind}, broker)

    def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise redis.ConnectionError('Connection refused')

    with monkeypatch.context() as patch, caplog.at_level(logging.WARNING):
        patch.setattr(direct, 'lookup_tables', unreachable)
        scheduler.tick()
    assert broker.llen('bound') == 0
    assert any('Broker unavailable' in r.getMessage() for r in caplog.records)
    assert any('handed back' in r.getMessage() for r in caplog.records)
    scheduler.tick()  # the broker is back: everything handed back is sent, once
    scheduler.close()
    ids = Counter(json.loads(raw)['headers']['id'] for raw in broker.lrange('bound', 0, -1))
    assert len(ids) == len(ARGUMENTS) and set(ids.values()) == {1}
    assert scheduler.publisher.templates.counts['pushed'] == 2 * len(ARGUMENTS)
