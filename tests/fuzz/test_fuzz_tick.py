"""Property: no stored entry makes ``tick()`` raise or hang; the bad one alone is parked.

Each example writes one generated entry (definition, meta, policy, or raw
bytes) due now beside a good one, on the session's real Redis, and ticks an
in-process scheduler once.  Then: the good entry was sent; if the generated
one was reported, its hash is byte-for-byte what was written and its score
moved to now + ``beat_max_loop_interval``.

Budget: ``REDBEAT_FUZZ_EXAMPLES`` examples per property (default 150; the
five properties take well under a minute together).  Each test also has a
pytest-timeout, so a hang fails instead of stalling the run.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import Celery
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redbeat.keys import Keys
from redbeat.schedulers import RedBeatScheduler
from tests.fuzz import strategies as gen
from tests.integration.test_hostile import GOOD_DEFINITION, raw_hash
from tests.integration.test_scheduler import Sent, put_due, tasks

EXAMPLES = int(os.environ.get('REDBEAT_FUZZ_EXAMPLES', '150'))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,  # one example is a few Redis round trips: timing varies on a busy machine
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
KEYS = Keys('redbeat:')
BAD = KEYS.entry('bad')

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def scheduler(celery_app: Celery) -> Iterator[RedBeatScheduler]:
    """One scheduler for every example, as one long-running beat; no lock (flushed each time)."""
    celery_app.conf.redbeat_lock_key = None
    made = RedBeatScheduler(app=celery_app)
    made.listen_for_changes = False
    yield made
    made.close()


class Errors(logging.Handler):
    """Error lines logged during one example."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def check_tick(
    client: redis.Redis, scheduler: RedBeatScheduler, sent: Sent, fields: dict[str, Any]
) -> None:
    """Write ``fields`` as the bad entry beside a good one, tick, check the property."""
    client.flushall()
    client.hset(BAD, mapping=fields)
    client.zadd(KEYS.schedule, {BAD: 0})
    put_due(client, KEYS, 'good', 'proj.tasks.good')
    stored = raw_hash(client, BAD)
    errors = Errors()
    beat_log = logging.getLogger('celery.beat')
    beat_log.addHandler(errors)
    started = time.time()
    try:
        delay = scheduler.tick()
    finally:
        beat_log.removeHandler(errors)
    assert isinstance(delay, float)
    assert 'proj.tasks.good' in tasks(sent)
    reported = [line for line in errors.lines if BAD in line]
    if reported:
        assert raw_hash(client, BAD) == stored, reported
        score = client.zscore(KEYS.schedule, BAD)
        assert score is not None
        assert started + scheduler.max_wait <= score <= time.time() + scheduler.max_wait
        assert 'proj.tasks.bad' not in tasks(sent)


@FUZZ
@given(definition=st.one_of(gen.definitions(), gen.VALUES))
def test_any_definition(
    redis_client: redis.Redis, scheduler: RedBeatScheduler, sent: Sent, definition: Any
) -> None:
    check_tick(redis_client, scheduler, sent, {'definition': gen.text(definition)})


@FUZZ
@given(meta=gen.metas())
def test_any_meta(
    redis_client: redis.Redis, scheduler: RedBeatScheduler, sent: Sent, meta: Any
) -> None:
    check_tick(redis_client, scheduler, sent, {'definition': GOOD_DEFINITION,
                                               'meta': gen.text(meta)})  # fmt: skip


@FUZZ
@given(policy=gen.policies())
def test_any_policy(
    redis_client: redis.Redis, scheduler: RedBeatScheduler, sent: Sent, policy: Any
) -> None:
    check_tick(redis_client, scheduler, sent, {'definition': GOOD_DEFINITION,
                                               'policy': gen.text(policy)})  # fmt: skip


@FUZZ
@given(
    field=st.sampled_from(['definition', 'meta', 'policy']),
    data=st.one_of(st.binary(max_size=64), gen.mutated_bytes(GOOD_DEFINITION.encode())),
)
def test_any_bytes(
    redis_client: redis.Redis, scheduler: RedBeatScheduler, sent: Sent, field: str, data: bytes
) -> None:
    fields: dict[str, Any] = {'definition': GOOD_DEFINITION, field: data}
    check_tick(redis_client, scheduler, sent, fields)


@FUZZ
@given(member=st.binary(min_size=1, max_size=24))
def test_any_member(
    redis_client: redis.Redis, scheduler: RedBeatScheduler, sent: Sent, member: bytes
) -> None:
    """A sorted-set member of any bytes, with or without a hash behind it."""
    redis_client.flushall()
    redis_client.hset(b'redbeat:' + member, 'definition', GOOD_DEFINITION)  # type: ignore[arg-type]
    redis_client.zadd(KEYS.schedule, {member: 0})  # type: ignore[dict-item]
    put_due(redis_client, KEYS, 'good', 'proj.tasks.good')
    assert isinstance(scheduler.tick(), float)
    assert 'proj.tasks.good' in tasks(sent)
