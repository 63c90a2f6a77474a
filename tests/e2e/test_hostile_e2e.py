"""End to end: a real ``celery beat`` given poisonous entries stays up; the good one runs.

The entries are hand-written as a ``redis-cli`` user would (HSET + ZADD, due
now); each of them once made ``celery beat`` exit or hang.  This module has its
own worker and beat (fixture ``live``).
"""

from __future__ import annotations

import time

import pytest
import redis
from celery.schedules import schedule

from redbeat import RedBeatSchedulerEntry
from tests.e2e.conftest import Live
from tests.e2e.harness import TASK
from tests.integration.test_hostile import HOSTILE, raw_hash

pytestmark = pytest.mark.e2e

#: Not the 1 MiB or 100,000-deep cases: beat meets those in the integration table.
POISON = {p.id: p.values[0] for p in HOSTILE if p.id not in ('definition-over-1-mib',)}


def test_beat_survives_poisonous_entries_and_runs_the_good_one(live: Live) -> None:
    client: redis.Redis = live.server.client()
    keys = {name: f'redbeat:hostile-{name}' for name in POISON}
    for name, fields in POISON.items():
        client.hset(keys[name], mapping=fields)  # type: ignore[arg-type]
    stored = {name: raw_hash(client, key) for name, key in keys.items()}
    client.zadd('redbeat::schedule', dict.fromkeys(keys.values(), 0))
    good = 'hostile-good'
    RedBeatSchedulerEntry(good, TASK, schedule(1.0), args=[good], app=live.app).save()
    since = time.time()

    live.cluster.records.wait_count(good, 4, timeout=30, since=since)
    assert live.beat.alive, live.beat.log()
    log = live.beat.log()
    for name, key in keys.items():
        assert f'Entry {key} skipped' in log, (name, log[-3000:])
        assert raw_hash(client, key) == stored[name], name
    # each parked (score moved from 0 to a look-again time), looked at again, never sent
    for key in keys.values():
        score = client.zscore('redbeat::schedule', key)
        assert score is not None and since < score < time.time() + 3, (key, score)
