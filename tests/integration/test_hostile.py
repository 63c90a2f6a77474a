"""No stored value stops beat: each hand-written entry that once did, on a real Redis.

Every case is written as a ``redis-cli HSET`` + ``ZADD`` user would, due now,
beside a good entry in the same chunk.  One in-process tick must send the good
one, park the bad one (score moved to now + ``beat_max_loop_interval``), leave
its bytes as they were, and log its key with the reason.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

from redbeat.keys import Keys
from redbeat.schedulers import RedBeatScheduler
from tests.integration.test_scheduler import Make, Sent, put_due, tasks

NEVER_DECODE: dict[str, Any] = {'NEVER_DECODE': []}


def raw_hash(client: Any, key: str) -> dict[bytes, bytes]:
    """The hash as stored, bytes for bytes."""
    reply = client.execute_command('HGETALL', key, **NEVER_DECODE)
    if isinstance(reply, dict):
        return reply
    return dict(zip(reply[::2], reply[1::2]))


def interval(every: str) -> str:
    """A definition whose interval is written as the raw JSON text ``every``."""
    return (
        '{"name":"bad","task":"proj.tasks.bad","schedule":{"__type__":"interval","every":'
        + every
        + ',"relative":false},"args":[],"kwargs":{},"options":{},"enabled":true}'
    )


def with_schedule(schedule: dict[str, Any], **fields: Any) -> str:
    body = {'name': 'bad', 'task': 'proj.tasks.bad', 'schedule': schedule, 'args': [],
            'kwargs': {}, 'options': {}, 'enabled': True, **fields}  # fmt: skip
    return json.dumps(body)


GOOD_DEFINITION = with_schedule({'__type__': 'interval', 'every': 60, 'relative': False})
EMPTY_DATETIME = {'__type__': 'datetime'}
DEEP = '[' * 100_000 + ']' * 100_000
RULE = {'__type__': 'rrule', 'freq': 6, 'interval': 1, 'dtstart': 1_700_000_000, 'dtstart_tz': 0}

#: (hash fields, what the log line says): one per kind of input that stopped beat.
HOSTILE = [
    pytest.param({'definition': interval('Infinity')}, 'Infinity', id='every-infinity'),
    pytest.param({'definition': interval('1e308')}, 'interval every', id='every-1e308'),
    pytest.param({'definition': interval('1e12')}, 'interval every', id='every-1e12'),
    pytest.param({'definition': interval('1e-9')}, 'interval every', id='every-1e-9'),
    pytest.param({'definition': interval('1e400')}, 'out of range', id='every-1e400'),
    pytest.param({'definition': with_schedule({**RULE, 'dtstart': 1e20})}, 'rrule dtstart',
                 id='rrule-dtstart-1e20'),
    pytest.param({'definition': with_schedule({**RULE, 'interval': 0})}, 'rrule interval',
                 id='rrule-interval-0'),
    pytest.param({'definition': with_schedule({**RULE, 'count': 0})}, 'rrule count',
                 id='rrule-count-0'),
    pytest.param({'definition': GOOD_DEFINITION,
                  'meta': json.dumps({'last_run_at': {**EMPTY_DATETIME, 'year': 2026, 'month': 1,
                                                      'day': 1, 'timezone': 1e20},
                                      'total_run_count': 1})},
                 'timezone', id='meta-timezone-1e20'),
    pytest.param({'definition': GOOD_DEFINITION, 'policy': '{"jitter": NaN}'}, 'NaN',
                 id='policy-jitter-nan'),
    pytest.param({'definition': GOOD_DEFINITION, 'policy': '{"catchup_window": NaN}'}, 'NaN',
                 id='policy-catchup-window-nan'),
    pytest.param({'definition': GOOD_DEFINITION, 'policy': '{"jitter": 1e300}'}, 'jitter',
                 id='policy-jitter-1e300'),
    pytest.param({'definition': with_schedule(RULE, args=[EMPTY_DATETIME])}, 'datetime',
                 id='empty-datetime-in-args'),
    pytest.param({'definition': GOOD_DEFINITION,
                  'policy': json.dumps({'start_at': EMPTY_DATETIME})},
                 'datetime', id='empty-datetime-in-policy'),
    pytest.param({'definition': with_schedule(RULE).replace('"args": []', f'"args": {DEEP}')},
                 'nests deeper', id='json-100000-deep'),
    pytest.param({'definition': GOOD_DEFINITION.replace('bad', 'b\xe9d').encode('latin-1')},
                 'not valid UTF-8', id='definition-not-utf8'),
    pytest.param({'definition': GOOD_DEFINITION, 'meta': b'{"total_run_count": 1\xff}'},
                 'not valid UTF-8', id='meta-not-utf8'),
    pytest.param({'definition': with_schedule(RULE, args=['x' * (1 << 20)])}, 'bytes',
                 id='definition-over-1-mib'),
]  # fmt: skip


def _error_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize(('fields', 'reason'), HOSTILE)
def test_hostile_entry_is_parked_and_its_chunk_mates_run(
    keys: Keys,
    celery_app: Celery,
    redis_client: redis.Redis,
    make_scheduler: Make,
    sent: Sent,
    caplog: pytest.LogCaptureFixture,
    fields: dict[str, str | bytes],
    reason: str,
) -> None:
    scheduler = make_scheduler(celery_app)
    bad = keys.entry('bad')
    put_due(redis_client, keys, 'before', 'proj.tasks.before')
    redis_client.hset(bad, mapping=fields)  # type: ignore[arg-type]
    redis_client.zadd(keys.schedule, {bad: 0})
    put_due(redis_client, keys, 'after', 'proj.tasks.after')
    stored = raw_hash(redis_client, bad)
    started = time.time()
    with caplog.at_level(logging.INFO):
        scheduler.tick()
    assert sorted(tasks(sent)) == ['proj.tasks.after', 'proj.tasks.before']
    assert raw_hash(redis_client, bad) == stored
    parked = redis_client.zscore(keys.schedule, bad)
    assert parked is not None
    assert started + scheduler.max_wait <= parked <= time.time() + scheduler.max_wait
    errors = [line for line in _error_lines(caplog) if bad in line]
    assert len(errors) == 1, _error_lines(caplog)
    assert reason in errors[0]


def test_member_that_is_not_utf8_is_parked(
    keys: Keys,
    celery_app: Celery,
    redis_client: redis.Redis,
    make_scheduler: Make,
    sent: Sent,
    caplog: pytest.LogCaptureFixture,
) -> None:
    member = keys.entry('bad').encode() + b'\xff'
    redis_client.hset(member, 'definition', GOOD_DEFINITION)  # type: ignore[arg-type]
    redis_client.zadd(keys.schedule, {member: 0})  # type: ignore[dict-item]
    put_due(redis_client, keys, 'good', 'proj.tasks.good')
    with caplog.at_level(logging.INFO):
        make_scheduler(celery_app).tick()
    assert tasks(sent) == ['proj.tasks.good']
    parked = redis_client.execute_command('ZSCORE', keys.schedule, member)
    assert float(parked) > time.time()
    assert any('not valid UTF-8' in line for line in _error_lines(caplog))


def test_standby_taking_over_does_not_die_on_the_same_entry(
    keys: Keys,
    celery_app: Celery,
    redis_client: redis.Redis,
    make_scheduler: Make,
    sent: Sent,
) -> None:
    bad = keys.entry('bad')
    redis_client.hset(bad, 'definition', interval('Infinity'))
    redis_client.zadd(keys.schedule, {bad: 0})
    leader, standby = make_scheduler(celery_app), make_scheduler(celery_app)
    leader.tick()
    standby.tick()  # the lock is held: standby does nothing
    leader.close()  # hands the lock over
    redis_client.zadd(keys.schedule, {bad: 0})  # due again when the standby takes over
    put_due(redis_client, keys, 'good', 'proj.tasks.good')
    standby.tick()
    assert tasks(sent) == ['proj.tasks.good']
    assert redis_client.zscore(keys.schedule, bad) > time.time()  # type: ignore[operator]


def _wrong_type_beat(
    celery_app: Celery, make_scheduler: Make, caplog: pytest.LogCaptureFixture, key: str
) -> tuple[RedBeatScheduler, list[float]]:
    scheduler = make_scheduler(celery_app)
    ticks = scheduler.quick_retries + 2
    with caplog.at_level(logging.INFO):
        delays = [scheduler.tick() for _ in range(ticks)]
    lines = [line for line in _error_lines(caplog) if f'key {key} holds a hash' in line]
    assert sum('Cannot dispatch' in line for line in lines) == ticks, _error_lines(caplog)
    assert delays == sorted(delays) and 0 < delays[0] < delays[-1]  # backing off
    return scheduler, delays


def test_schedule_key_of_wrong_type_is_reported_and_beat_backs_off(
    keys: Keys,
    celery_app: Celery,
    redis_client: redis.Redis,
    make_scheduler: Make,
    sent: Sent,
    caplog: pytest.LogCaptureFixture,
) -> None:
    redis_client.hset(keys.schedule, 'not', 'a sorted set')
    scheduler, _ = _wrong_type_beat(celery_app, make_scheduler, caplog, keys.schedule)
    redis_client.delete(keys.schedule)  # fixed by hand: beat goes on
    put_due(redis_client, keys, 'good', 'proj.tasks.good')
    scheduler.tick()
    assert tasks(sent) == ['proj.tasks.good']


def test_lock_key_of_wrong_type_is_reported_and_beat_backs_off(
    keys: Keys,
    celery_app: Celery,
    redis_client: redis.Redis,
    make_scheduler: Make,
    sent: Sent,
    caplog: pytest.LogCaptureFixture,
) -> None:
    lock = keys.default_lock
    redis_client.hset(lock, 'not', 'a lock')
    put_due(redis_client, keys, 'good', 'proj.tasks.good')
    scheduler, _ = _wrong_type_beat(celery_app, make_scheduler, caplog, lock)
    assert tasks(sent) == []
    redis_client.delete(lock)
    scheduler.tick()
    assert tasks(sent) == ['proj.tasks.good']


def test_lock_key_turned_hash_while_leading_is_reported(
    keys: Keys,
    celery_app: Celery,
    redis_client: redis.Redis,
    make_scheduler: Make,
    caplog: pytest.LogCaptureFixture,
) -> None:
    scheduler = make_scheduler(celery_app)
    scheduler.tick()
    assert scheduler.leader.held
    redis_client.delete(keys.default_lock)
    redis_client.hset(keys.default_lock, 'not', 'a lock')
    put_due(redis_client, keys, 'good', 'proj.tasks.good')
    with caplog.at_level(logging.INFO):
        scheduler.tick()
    assert any(f'key {keys.default_lock} holds a hash' in line for line in _error_lines(caplog))


def test_log_line_shown_in_the_docs(
    keys: Keys,
    celery_app: Celery,
    redis_client: redis.Redis,
    make_scheduler: Make,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """docs/data-format.rst shows the line a parked entry logs: this is it, verbatim."""
    docs = Path(__file__).resolve().parents[2] / 'docs' / 'data-format.rst'
    shown = next(
        line.strip() for line in docs.read_text().splitlines() if 'beat: Entry ' in line
    ).replace('redbeat:nightly', keys.entry('nightly'))
    redis_client.hset(keys.entry('nightly'), 'definition', interval('1e308'))
    redis_client.zadd(keys.schedule, {keys.entry('nightly'): 0})
    with caplog.at_level(logging.INFO):
        make_scheduler(celery_app).tick()
    assert _error_lines(caplog) == [shown]


def test_static_entries_beat_could_not_run_are_skipped_at_start(
    keys: Keys,
    celery_app: Celery,
    redis_client: redis.Redis,
    make_scheduler: Make,
    caplog: pytest.LogCaptureFixture,
) -> None:
    celery_app.conf.beat_schedule = {
        'nan-args': {'task': 'proj.tasks.a', 'schedule': 30.0, 'args': (float('nan'),)},
        'tiny': {'task': 'proj.tasks.b', 'schedule': 1e-9},
        'fine': {'task': 'proj.tasks.c', 'schedule': 30.0},
    }
    with caplog.at_level(logging.INFO):
        make_scheduler(celery_app)
    assert redis_client.exists(keys.entry('fine'))
    assert not redis_client.exists(keys.entry('nan-args'))
    assert not redis_client.exists(keys.entry('tiny'))
    errors = _error_lines(caplog)
    assert any("'nan-args'" in line and 'args' in line for line in errors), errors
    assert any("'tiny'" in line and 'interval every' in line for line in errors), errors
