"""RedBeatScheduler against a real Redis: tick() called directly, the broker queue inspected."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import redis
from celery import Celery
from celery.schedules import schedule
from kombu.exceptions import OperationalError

import redbeat.store
from redbeat import RedBeatSchedulerEntry, save_entries
from redbeat.codec import decode_meta, encode_meta
from redbeat.keys import Keys
from redbeat.schedulers import RedBeatScheduler
from tests.backends import PrivateServer, started

UTC = timezone.utc
Make = Callable[..., RedBeatScheduler]
Sent = Callable[[], list[dict[str, Any]]]


def definition(name: str, task: str = 'proj.tasks.job', every: float = 60, **extra: Any) -> str:
    body = {'name': name, 'task': task,
            'schedule': {'__type__': 'interval', 'every': every, 'relative': False},
            'args': [], 'kwargs': {}, 'options': {}, 'enabled': True}  # fmt: skip
    body.update(extra)
    return json.dumps(body)


def put_due(
    client: redis.Redis, keys: Keys, name: str, task: str = 'proj.tasks.job', **extra: Any
) -> None:
    """A hand-written entry, due now (as redis-cli users write it)."""
    client.hset(keys.entry(name), 'definition', definition(name, task, **extra))
    client.zadd(keys.schedule, {keys.entry(name): 0})


def tasks(sent: Sent) -> list[str]:
    return [h['task'] for h in sent()]


# --- start-up and static entries ------------------------------------------------


def test_saved_entry_is_not_sent_at_once(
    celery_app: Celery, make_scheduler: Make, sent: Sent
) -> None:
    scheduler = make_scheduler(celery_app)
    RedBeatSchedulerEntry('fresh', 'proj.tasks.fresh', schedule(timedelta(seconds=30)),
                          app=celery_app).save()  # fmt: skip
    scheduler.tick()
    assert 'proj.tasks.fresh' not in tasks(sent)


def test_static_entries_written_kept_updated_and_removed(
    keys: Keys, celery_app: Celery, redis_client: redis.Redis, make_scheduler: Make
) -> None:
    celery_app.conf.beat_schedule = {
        'static-a': {'task': 'proj.tasks.a', 'schedule': 30.0, 'args': (1,)},
        'static-b': {'task': 'proj.tasks.b', 'schedule': 60.0},
    }
    make_scheduler(celery_app).close()
    assert json.loads(redis_client.hget(keys.entry('static-a'), 'definition'))['args'] == [1]
    assert redis_client.zscore(keys.schedule, keys.entry('static-a')) is not None
    assert {'static-a', 'static-b'} <= redis_client.smembers(keys.statics)

    # run state survives a restart with the same config
    ran = encode_meta(datetime(2026, 1, 1, tzinfo=UTC), 17)
    redis_client.hset(keys.entry('static-a'), 'meta', ran)
    make_scheduler(celery_app).close()
    assert redis_client.hget(keys.entry('static-a'), 'meta') == ran

    # a changed config entry is updated, its run state kept
    celery_app.conf.beat_schedule = {
        'static-a': {'task': 'proj.tasks.a', 'schedule': 30.0, 'args': (2,)},
    }
    make_scheduler(celery_app).close()
    assert json.loads(redis_client.hget(keys.entry('static-a'), 'definition'))['args'] == [2]
    assert decode_meta('k', redis_client.hget(keys.entry('static-a'), 'meta'))[1] == 17
    # one removed from config is deleted
    assert not redis_client.exists(keys.entry('static-b'))
    assert redis_client.zscore(keys.schedule, keys.entry('static-b')) is None
    assert 'static-b' not in redis_client.smembers(keys.statics)
    assert 'static-a' in redis_client.smembers(keys.statics)


def test_statics_removed_from_config_are_found_across_several_script_calls(
    keys: Keys,
    celery_app: Celery,
    redis_client: Any,
    make_scheduler: Make,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(redbeat.store, 'SAVE_CHUNK', 3)
    spec = {'task': 'proj.tasks.s', 'schedule': 60.0}
    celery_app.conf.update(result_expires=None,
                           beat_schedule={f's{i}': spec for i in range(10)})  # fmt: skip
    make_scheduler(celery_app)

    celery_app.conf.beat_schedule = {f's{i}': spec for i in range(2, 9)}  # 3 calls save these
    make_scheduler(celery_app)
    assert redis_client.smembers(keys.statics) == {f's{i}' for i in range(2, 9)}
    assert redis_client.zcard(keys.schedule) == 7
    assert not redis_client.exists(keys.entry('s0'), keys.entry('s1'), keys.entry('s9'))

    celery_app.conf.beat_schedule = {}  # no static entry left: nothing saved, all removed
    make_scheduler(celery_app)
    assert redis_client.smembers(keys.statics) == set()
    assert redis_client.zcard(keys.schedule) == 0


def test_dynamic_entries_are_not_deleted_as_statics(
    keys: Keys, celery_app: Celery, redis_client: Any, make_scheduler: Make
) -> None:
    RedBeatSchedulerEntry('dyn', 'proj.tasks.dyn', schedule(timedelta(seconds=30)),
                          app=celery_app).save()  # fmt: skip
    celery_app.conf.beat_schedule = {}
    make_scheduler(celery_app).close()
    assert redis_client.exists(keys.entry('dyn'))


# --- hand-written entries ------------------------------------------------------------


@pytest.mark.parametrize('prefixed', [True, False], ids=['prefixed', 'bare'])
def test_hand_written_entry_is_sent_and_member_normalised(
    keys: Keys,
    celery_app: Celery,
    redis_client: redis.Redis,
    make_scheduler: Make,
    sent: Sent,
    prefixed: bool,
) -> None:
    member = keys.entry('hand') if prefixed else 'hand'
    scheduler = make_scheduler(celery_app)
    redis_client.hset(keys.entry('hand'), 'definition', definition('hand', 'proj.tasks.hand'))
    redis_client.zadd(keys.schedule, {member: 0})
    before = time.time()
    scheduler.tick()
    assert tasks(sent) == ['proj.tasks.hand']
    assert redis_client.zscore(keys.schedule, 'hand') is None
    score = redis_client.zscore(keys.schedule, keys.entry('hand'))
    assert score is not None and score > before
    last_run_at, count = decode_meta('k', redis_client.hget(keys.entry('hand'), 'meta'))
    assert count == 1 and last_run_at is not None


def test_hash_without_member_is_adopted_at_start(
    keys: Keys, celery_app: Celery, redis_client: redis.Redis, make_scheduler: Make, sent: Sent
) -> None:
    redis_client.hset(keys.entry('orphan'), 'definition', definition('orphan', 'proj.tasks.orphan'))
    scheduler = make_scheduler(celery_app)
    assert redis_client.zscore(keys.schedule, keys.entry('orphan')) is not None
    scheduler.tick()
    assert tasks(sent) == ['proj.tasks.orphan']


# --- dynamic changes -------------------------------------------------------------


def test_start_up_after_a_script_flush(
    keys: Keys, celery_app: Celery, redis_client: Any, make_scheduler: Make
) -> None:
    celery_app.conf.beat_schedule = {'static-a': {'task': 'proj.tasks.a', 'schedule': 30.0}}
    redis_client.hset(keys.entry('orphan'), 'definition', definition('orphan'))
    redis_client.script_flush()  # as after a Redis restart

    make_scheduler(celery_app)

    assert redis_client.zscore(keys.schedule, keys.entry('static-a')) is not None
    assert redis_client.zscore(keys.schedule, keys.entry('orphan')) is not None
    assert 'static-a' in redis_client.smembers(keys.statics)


def test_orphans_on_every_scan_page_are_adopted_at_start(
    keys: Keys,
    celery_app: Celery,
    redis_client: Any,
    make_scheduler: Make,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(RedBeatScheduler, 'orphan_scan', 3)  # many pages
    celery_app.conf.beat_schedule = {f'static-{i}': {'task': 'proj.tasks.s', 'schedule': 60.0}
                                     for i in range(20)}  # fmt: skip
    for i in range(12):
        redis_client.hset(keys.entry(f'orphan-{i}'), 'definition', definition(f'orphan-{i}'))
    redis_client.hset(keys.entry('bare'), 'definition', definition('bare'))
    redis_client.zadd(keys.schedule, {'bare': 5.0})  # scheduled by its bare name: not an orphan
    redis_client.hset(keys.entry('broken'), 'definition', '{not json')

    make_scheduler(celery_app)

    for i in range(12):
        assert redis_client.zscore(keys.schedule, keys.entry(f'orphan-{i}')) == 0  # due now
    assert redis_client.zscore(keys.schedule, 'bare') == 5.0
    assert redis_client.zscore(keys.schedule, keys.entry('bare')) is None
    assert redis_client.zscore(keys.schedule, keys.entry('broken')) is None  # logged, left alone
    assert redis_client.hget(keys.entry('broken'), 'definition') == '{not json'


def test_save_from_another_client_takes_effect_next_tick(
    celery_app: Celery, make_scheduler: Make, sent: Sent
) -> None:
    scheduler = make_scheduler(celery_app)
    scheduler.tick()
    assert tasks(sent) == []
    other_app = Celery('other', set_as_current=False)
    other_app.conf.update(celery_app.conf.table(with_defaults=False))
    e = RedBeatSchedulerEntry('dyn', 'proj.tasks.dyn', schedule(timedelta(seconds=10)),
                              app=other_app)  # fmt: skip
    save_entries([e], now=datetime.now(UTC) - timedelta(seconds=100))  # first due 90s ago
    scheduler.tick()
    assert tasks(sent) == ['proj.tasks.dyn']
    other_app.close()


def test_delete_and_disable_take_effect_next_tick(
    keys: Keys, celery_app: Celery, redis_client: redis.Redis, make_scheduler: Make, sent: Sent
) -> None:
    scheduler = make_scheduler(celery_app)
    put_due(redis_client, keys, 'gone', 'proj.tasks.gone')
    put_due(redis_client, keys, 'paused', 'proj.tasks.paused')
    put_due(redis_client, keys, 'kept', 'proj.tasks.kept')
    RedBeatSchedulerEntry('gone', 'proj.tasks.gone', schedule(timedelta(seconds=60)),
                          app=celery_app).delete()  # fmt: skip
    RedBeatSchedulerEntry('paused', 'proj.tasks.paused', schedule(timedelta(seconds=60)),
                          enabled=False, app=celery_app).save()  # fmt: skip
    scheduler.tick()
    assert tasks(sent) == ['proj.tasks.kept']
    assert redis_client.zscore(keys.schedule, keys.entry('paused')) == -1


# --- bad input ---------------------------------------------------------------------


BAD_DEFINITIONS = [
    pytest.param('{"name": "bad", "task": ', 'not valid JSON', id='not-json'),
    pytest.param(json.dumps({'name': 'bad', 'task': 't', 'schedule': {'__type__': 'weekly'}}),
                 "'weekly'", id='unknown-type'),
    pytest.param(json.dumps({'name': 'bad', 'schedule': {'__type__': 'interval', 'every': 5}}),
                 "'task'", id='missing-task'),
    pytest.param(json.dumps({'name': 'bad', 'task': 't',
                             'schedule': {'__type__': 'crontab', 'minute': '99'}}),
                 'crontab', id='invalid-crontab'),
]  # fmt: skip


def _error_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize(('text', 'reason'), BAD_DEFINITIONS)
def test_bad_definition_logged_skipped_and_untouched(
    keys: Keys,
    celery_app: Celery,
    redis_client: redis.Redis,
    make_scheduler: Make,
    sent: Sent,
    caplog: pytest.LogCaptureFixture,
    text: str,
    reason: str,
) -> None:
    scheduler = make_scheduler(celery_app)
    redis_client.hset(keys.entry('bad'), mapping={'definition': text, 'meta': 'untouched'})
    redis_client.zadd(keys.schedule, {keys.entry('bad'): 0})
    put_due(redis_client, keys, 'good', 'proj.tasks.good')
    before = redis_client.hgetall(keys.entry('bad'))
    with caplog.at_level(logging.INFO):
        scheduler.tick()
    assert tasks(sent) == ['proj.tasks.good']
    assert redis_client.hgetall(keys.entry('bad')) == before
    errors = [line for line in _error_lines(caplog) if keys.entry('bad') in line]
    assert errors, _error_lines(caplog)
    assert reason in errors[0]


def test_key_of_wrong_type_logged_skipped_and_untouched(
    keys: Keys,
    celery_app: Celery,
    redis_client: redis.Redis,
    make_scheduler: Make,
    sent: Sent,
    caplog: pytest.LogCaptureFixture,
) -> None:
    scheduler = make_scheduler(celery_app)
    redis_client.set(keys.entry('str'), 'a string, not a hash')
    redis_client.zadd(keys.schedule, {keys.entry('str'): 0})
    put_due(redis_client, keys, 'good', 'proj.tasks.good')
    with caplog.at_level(logging.INFO):
        scheduler.tick()
    assert tasks(sent) == ['proj.tasks.good']
    assert redis_client.get(keys.entry('str')) == 'a string, not a hash'
    errors = [line for line in _error_lines(caplog) if keys.entry('str') in line]
    assert errors and 'wrong type' in errors[0]


def test_member_without_hash_logged_and_skipped(
    keys: Keys,
    celery_app: Celery,
    redis_client: redis.Redis,
    make_scheduler: Make,
    sent: Sent,
    caplog: pytest.LogCaptureFixture,
) -> None:
    scheduler = make_scheduler(celery_app)
    redis_client.zadd(keys.schedule, {keys.entry('ghost'): 0})
    put_due(redis_client, keys, 'good', 'proj.tasks.good')
    with caplog.at_level(logging.INFO):
        scheduler.tick()
    assert tasks(sent) == ['proj.tasks.good']
    assert not redis_client.exists(keys.entry('ghost'))
    errors = [line for line in _error_lines(caplog) if keys.entry('ghost') in line]
    assert errors and 'no definition' in errors[0]


def test_bad_entry_is_not_retried_every_tick(
    keys: Keys, celery_app: Celery, redis_client: redis.Redis, make_scheduler: Make
) -> None:
    scheduler = make_scheduler(celery_app)
    redis_client.hset(keys.entry('bad'), 'definition', 'nope')
    redis_client.zadd(keys.schedule, {keys.entry('bad'): 0})
    before = time.time()
    scheduler.tick()
    # parked until the next look, its data untouched
    assert redis_client.zscore(keys.schedule, keys.entry('bad')) > before
    assert redis_client.hgetall(keys.entry('bad')) == {'definition': 'nope'}


# --- the lock -----------------------------------------------------------------------


def test_only_the_lock_holder_sends_and_close_hands_over(
    keys: Keys, celery_app: Celery, redis_client: redis.Redis, make_scheduler: Make, sent: Sent
) -> None:
    first = make_scheduler(celery_app)
    second = make_scheduler(celery_app)
    first.tick()
    assert redis_client.get(keys.default_lock) == first.leader.token

    put_due(redis_client, keys, 'one', 'proj.tasks.one')
    second.tick()
    assert tasks(sent) == []
    assert redis_client.zscore(keys.schedule, keys.entry('one')) == 0
    first.tick()
    assert tasks(sent) == ['proj.tasks.one']

    first.close()
    assert redis_client.get(keys.default_lock) is None
    put_due(redis_client, keys, 'two', 'proj.tasks.two')
    second.tick()
    assert tasks(sent) == ['proj.tasks.one', 'proj.tasks.two']
    assert redis_client.get(keys.default_lock) == second.leader.token


def test_lock_key_none_disables_locking(
    keys: Keys, celery_app: Celery, redis_client: redis.Redis, make_scheduler: Make, sent: Sent
) -> None:
    celery_app.conf.redbeat_lock_key = None
    first = make_scheduler(celery_app)
    second = make_scheduler(celery_app)
    put_due(redis_client, keys, 'one', 'proj.tasks.one')
    second.tick()
    put_due(redis_client, keys, 'two', 'proj.tasks.two')
    first.tick()
    assert tasks(sent) == ['proj.tasks.one', 'proj.tasks.two']
    assert redis_client.keys('*lock*') == []


def test_claims_are_fenced_by_the_lock_token(
    keys: Keys,
    celery_app: Celery,
    redis_client: redis.Redis,
    make_scheduler: Make,
    sent: Sent,
    caplog: pytest.LogCaptureFixture,
) -> None:
    scheduler = make_scheduler(celery_app)
    scheduler.tick()
    assert scheduler.leader.held
    redis_client.set(keys.default_lock, 'another-beat:1:abc')
    put_due(redis_client, keys, 'one', 'proj.tasks.one')
    with caplog.at_level(logging.INFO):
        scheduler.tick()
    assert tasks(sent) == []
    assert redis_client.zscore(keys.schedule, keys.entry('one')) == 0
    assert redis_client.hget(keys.entry('one'), 'meta') is None
    assert not scheduler.leader.held
    assert any('Lost lock' in r.getMessage() and r.levelno == logging.WARNING
               for r in caplog.records)  # fmt: skip
    assert redis_client.get(keys.default_lock) == 'another-beat:1:abc'


# --- Redis settings and failures ------------------------------------------------------


@pytest.mark.parametrize(('policy', 'warned'), [('allkeys-lru', True), ('noeviction', False)])
def test_eviction_policy_warning(
    keys: Keys,
    celery_app: Celery,
    redis_client: redis.Redis,
    make_scheduler: Make,
    caplog: pytest.LogCaptureFixture,
    policy: str,
    warned: bool,
) -> None:
    redis_client.config_set('maxmemory', '100mb')
    redis_client.config_set('maxmemory-policy', policy)
    try:
        with caplog.at_level(logging.WARNING):
            make_scheduler(celery_app)
    finally:
        redis_client.config_set('maxmemory-policy', 'noeviction')
        redis_client.config_set('maxmemory', '0')
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    warnings = [m for m in messages if 'maxmemory-policy' in m]
    assert bool(warnings) is warned
    if warned:
        assert 'allkeys-lru' in warnings[0]


def ticks_while_down(scheduler: RedBeatScheduler, caplog: pytest.LogCaptureFixture) -> list[str]:
    """Two ticks while Redis is down: each asks for a pause, the second a longer one.

    Returns the warnings logged.
    """
    with caplog.at_level(logging.WARNING):
        delays = [scheduler.tick() for _ in range(2)]
    assert 0 < delays[0] <= delays[1]  # backs off
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def sends_once_back(
    scheduler: RedBeatScheduler, private: PrivateServer, keys: Keys, sent: Sent
) -> None:
    """Redis is back: an entry written there is sent within a few ticks, by the lock holder."""
    with contextlib.closing(private.client()) as client:
        put_due(client, keys, 'back', 'proj.tasks.back')
    for _ in range(4):
        scheduler.tick()
    assert tasks(sent) == ['proj.tasks.back']
    assert scheduler.leader.held


@pytest.mark.parametrize('down_at_start', [False, True], ids=['down-later', 'down-at-start'])
def test_redis_down_is_survived(
    keys: Keys,
    celery_app: Celery,
    private: PrivateServer,
    make_scheduler: Make,
    sent: Sent,
    caplog: pytest.LogCaptureFixture,
    down_at_start: bool,
) -> None:
    """Beat survives its Redis (every cluster node) going away, or being down when it starts.

    It warns naming the URL, backs off, and sends once Redis is back (and writes
    beat_schedule then, if it could not at start).
    """
    celery_app.conf.redbeat_redis_url = private.url
    celery_app.conf.redbeat_redis_options = {'socket_timeout': 1, 'socket_connect_timeout': 0.5}
    celery_app.conf.beat_schedule = {'static': {'task': 'proj.tasks.static', 'schedule': 3600.0}}
    if not down_at_start:
        started(private)
    with caplog.at_level(logging.WARNING):
        scheduler = make_scheduler(celery_app)
    if not down_at_start:
        scheduler.tick()
        private.stop()
    warnings = ticks_while_down(scheduler, caplog)
    expected = 'unavailable at start' if down_at_start else 'Redis error at'
    assert any(expected in w and private.url in w for w in warnings), warnings

    started(private)
    # A restarted server lost the lock: one tick notices, the next takes it again
    # (a cluster client first finds its connections broken and reads the slot map again).
    sends_once_back(scheduler, private, keys, sent)
    if down_at_start:  # beat_schedule could not be written before
        with contextlib.closing(private.client()) as client:
            assert client.sismember(keys.statics, 'static')


def test_unreachable_url_is_logged_with_its_password_masked(
    celery_app: Celery,
    private: PrivateServer,
    make_scheduler: Make,
    caplog: pytest.LogCaptureFixture,
) -> None:
    scheme, rest = private.url.split('://')  # not started: nothing answers
    celery_app.conf.redbeat_redis_url = f'{scheme}://:pw-Xk3@{rest}'
    celery_app.conf.redbeat_redis_options = {'socket_connect_timeout': 0.5}
    with caplog.at_level(logging.WARNING):
        make_scheduler(celery_app).tick()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and all('pw-Xk3' not in w for w in warnings)
    assert any(f'{scheme}://:**@{rest}' in w for w in warnings), warnings


def test_publish_failure_rolls_back_the_claim(
    keys: Keys,
    celery_app: Celery,
    redis_client: redis.Redis,
    make_scheduler: Make,
    sent: Sent,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scheduler = make_scheduler(celery_app)
    last = datetime(2026, 1, 1, tzinfo=UTC)
    meta = encode_meta(last, 4)
    redis_client.hset(keys.entry('pub'), mapping={'definition': definition('pub', 'proj.tasks.pub'),
                                              'meta': meta})  # fmt: skip
    redis_client.zadd(keys.schedule, {keys.entry('pub'): 1767225660.125})
    score = redis_client.zscore(keys.schedule, keys.entry('pub'))

    def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError('broker down')

    monkeypatch.setattr(celery_app, 'send_task', unreachable)
    scheduler.tick()
    assert tasks(sent) == []
    assert redis_client.zscore(keys.schedule, keys.entry('pub')) == score
    assert redis_client.hget(keys.entry('pub'), 'meta') == meta

    monkeypatch.undo()
    scheduler.tick()
    assert tasks(sent) == ['proj.tasks.pub']
    assert decode_meta('k', redis_client.hget(keys.entry('pub'), 'meta'))[1] == 5


def test_missed_occurrences_are_sent_once(
    keys: Keys, celery_app: Celery, redis_client: redis.Redis, make_scheduler: Make, sent: Sent
) -> None:
    scheduler = make_scheduler(celery_app)
    now = time.time()
    last = datetime.fromtimestamp(now - 40, tz=UTC)
    redis_client.hset(keys.entry('late'), mapping={
        'definition': definition('late', 'proj.tasks.late', every=10),
        'meta': encode_meta(last, 2)})  # fmt: skip
    redis_client.zadd(keys.schedule, {keys.entry('late'): now - 30})
    before = time.time()
    scheduler.tick()
    scheduler.tick()
    assert tasks(sent) == ['proj.tasks.late']
    assert redis_client.zscore(keys.schedule, keys.entry('late')) > before
    assert decode_meta('k', redis_client.hget(keys.entry('late'), 'meta'))[1] == 3


def test_scores_keep_sub_second_precision(
    keys: Keys, celery_app: Celery, redis_client: redis.Redis, make_scheduler: Make, sent: Sent
) -> None:
    scheduler = make_scheduler(celery_app)
    due = round(time.time() - 1, 0) + 0.123456  # just due, a fraction past the second
    redis_client.hset(keys.entry('fine'), mapping={
        'definition': definition('fine', 'proj.tasks.fine', every=3600.25),
        'meta': encode_meta(datetime.fromtimestamp(due - 3600.25, tz=UTC), 0)})  # fmt: skip
    redis_client.zadd(keys.schedule, {keys.entry('fine'): due})
    scheduler.tick()
    assert tasks(sent) == ['proj.tasks.fine']
    assert redis_client.zscore(keys.schedule, keys.entry('fine')) == pytest.approx(
        due + 3600.25, abs=1e-5
    )
    last_run_at, _ = decode_meta('k', redis_client.hget(keys.entry('fine'), 'meta'))
    assert last_run_at is not None
    assert last_run_at.timestamp() == pytest.approx(due, abs=1e-5)


def test_occurrence_sent_once_by_two_unlocked_schedulers(
    keys: Keys, celery_app: Celery, redis_client: redis.Redis, make_scheduler: Make, sent: Sent
) -> None:
    celery_app.conf.redbeat_lock_key = None
    first, second = make_scheduler(celery_app), make_scheduler(celery_app)
    put_due(redis_client, keys, 'once', 'proj.tasks.once')
    first.tick()
    second.tick()
    assert tasks(sent) == ['proj.tasks.once']


def test_sleep_after_a_run_accounts_for_the_entry_just_sent(
    keys: Keys, celery_app: Celery, redis_client: redis.Redis, make_scheduler: Make, sent: Sent
) -> None:
    """The wait returned after a tick is the sent entry's next due time, not the longer cap."""
    celery_app.conf.beat_max_loop_interval = 60
    put_due(redis_client, keys, 'fast', every=2)
    scheduler = make_scheduler(celery_app, lock_timeout=300)
    wait = scheduler.tick()
    assert tasks(sent) == ['proj.tasks.job']
    assert 0 < wait <= 2.0


def test_static_entries_written_again_when_redis_lost_the_schedule(
    keys: Keys, celery_app: Celery, redis_client: redis.Redis, make_scheduler: Make, sent: Sent
) -> None:
    celery_app.conf.beat_schedule = {'kept': {'task': 'proj.tasks.kept', 'schedule': 30.0}}
    scheduler = make_scheduler(celery_app)
    scheduler.tick()
    redis_client.flushdb()  # as a restart without persistence would leave it

    scheduler.tick()
    scheduler.tick()
    assert redis_client.zscore(keys.schedule, keys.entry('kept')) is not None
    assert (
        json.loads(redis_client.hget(keys.entry('kept'), 'definition'))['task'] == 'proj.tasks.kept'
    )
    assert redis_client.sismember(keys.statics, 'kept')


# --- the broker connection, made while idle -------------------------------------


def test_broker_connected_while_idle_before_the_first_send(
    keys: Keys, celery_app: Celery, redis_client: redis.Redis, make_scheduler: Make, sent: Sent
) -> None:
    """A tick with nothing due yet connects to the broker, so the first burst does not
    pay for it; the first due entry then goes out on that same connection."""
    scheduler = make_scheduler(celery_app)
    RedBeatSchedulerEntry('soon', 'proj.tasks.soon', schedule(timedelta(seconds=30)),
                          app=celery_app).save()  # fmt: skip
    scheduler.tick()
    assert tasks(sent) == []
    assert 'producer' in scheduler.__dict__
    producer = scheduler.producer
    assert producer.connection.connected
    put_due(redis_client, keys, 'now', 'proj.tasks.now')
    scheduler.tick()
    assert tasks(sent) == ['proj.tasks.now']
    assert scheduler.producer is producer


def test_broker_down_while_idle_is_tried_once_and_left_to_the_send(
    celery_app: Celery, make_scheduler: Make, caplog: pytest.LogCaptureFixture
) -> None:
    """An unreachable broker is tried once, without retries, and the tick returns
    normally; later ticks do not try again (the send connects, as Celery's beat does)."""
    with socket_closed_port() as port:
        celery_app.conf.broker_url = f'redis://127.0.0.1:{port}/0'
        scheduler = make_scheduler(celery_app)
        RedBeatSchedulerEntry('soon', 'proj.tasks.soon', schedule(timedelta(seconds=30)),
                              app=celery_app).save()  # fmt: skip
        attempts: list[int] = []
        real = scheduler.connection.ensure_connection

        def counted(*args: Any, **kwargs: Any) -> Any:
            attempts.append(kwargs.get('max_retries', -1))
            return real(*args, **kwargs)

        scheduler.connection.ensure_connection = counted  # type: ignore[method-assign]
        with caplog.at_level(logging.DEBUG, logger='celery.beat'):
            assert scheduler.tick() > 0
            scheduler.tick()
    assert attempts == [0]  # once, no retries
    assert 'producer' not in scheduler.__dict__
    assert 'Not connected to the broker ahead of the first send' in caplog.text


@contextlib.contextmanager
def socket_closed_port() -> Any:
    """A loopback port nothing listens on (bound, then closed)."""
    import socket

    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    yield port
