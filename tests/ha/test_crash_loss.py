"""What a SIGKILL of the leader costs, counted exactly, in both delivery modes.

Real ``celery beat`` processes (:mod:`crashapp`, which sends through the fast
path in kombu batches) dispatch ``ENTRIES`` entries due every second; the
leader is SIGKILLed ``KILLS`` times, each time while a dispatch is under way
(the broker queue is growing), and a standby takes over while a replacement
beat starts.  No worker runs: every message is read from the broker queue.

What was *claimed* is the sum of the entries' run counts (``total_run_count``
counts each occurrence claimed); what was *sent* is the set of task ids in
the queue.  Their difference is what the kills lost, measured right after
each kill (no beat can send until the lock expires).  Every re-send carries
the occurrence's task id, so a duplicate is the same id twice.

* default (``at-most-once``): no task id twice; each kill loses at most one
  claim group (``RedBeatScheduler.publish_group``);
* ``at-least-once``: nothing lost at the end; duplicates only as the same id.

Figures are printed (run with ``-s``): they are the ones in
docs/high-availability.rst.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
import redis
from celery import Celery
from celery.schedules import schedule

from redbeat import RedBeatSchedulerEntry, save_entries
from redbeat.codec import decode_meta
from redbeat.schedulers import RedBeatScheduler
from tests.e2e.harness import LOCK_KEY, lock_holder
from tests.ha.conftest import wait_new_holder
from tests.procs import CeleryProcess, start_beat, wait_for
from tests.redis_server import RedisServer

pytestmark = pytest.mark.ha

ServerFactory = Callable[..., RedisServer]
HA_DIR = Path(__file__).resolve().parent
TASK = 'crashapp.tick'
ENTRIES = 400
KILLS = 20
LOCK_TIMEOUT = 1.0
QUEUE = 'celery'


@dataclass
class Tally:
    """Task ids read from the broker queue, and the kills' figures."""

    ids: Counter[str] = field(default_factory=Counter)
    entry: dict[str, str] = field(default_factory=dict)  # task id -> entry key
    #: claimed and not in the broker, right after each kill (before any re-send)
    unsent_at_kill: list[int] = field(default_factory=list)
    takeovers: list[float] = field(default_factory=list)  # kill -> lock taken, seconds
    first_sends: list[float] = field(default_factory=list)  # kill -> a message in the queue


def drain(broker: redis.Redis, tally: Tally) -> int:
    """Move every message of the queue into ``tally``; how many there were."""
    moved = 0
    for _ in range(1000):  # bounded: far more than the queue can hold
        raw = broker.lpop(QUEUE, 5000)
        if not raw:
            return moved
        moved += len(raw)
        for message in raw:
            headers = json.loads(message)['headers']
            tally.ids[headers['id']] += 1
            tally.entry[headers['id']] = f'redbeat:c{int(headers["argsrepr"][1:-1]):04d}'

    raise AssertionError('the broker queue never emptied')


def run_counts(conn: redis.Redis) -> dict[str, int]:
    """Occurrences claimed per entry (its ``total_run_count``)."""
    keys = [f'redbeat:c{i:04d}' for i in range(ENTRIES)]
    with conn.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hget(key, 'meta')
        metas = pipe.execute()
    return {k: decode_meta(k, m)[1] for k, m in zip(keys, metas)}  # a count of 0 is left out


def lost(conn: redis.Redis, tally: Tally) -> int:
    return sum(run_counts(conn).values()) - len(tally.ids)


def wait_dispatching(broker: redis.Redis, timeout: float = 3.0) -> None:
    """Return as soon as the queue grows between two looks 1 ms apart (a dispatch is on)."""
    deadline = time.monotonic() + timeout
    before = broker.llen(QUEUE)
    while time.monotonic() < deadline:
        time.sleep(0.001)
        now = broker.llen(QUEUE)
        if now > before:
            return
        before = now
    raise AssertionError(f'no dispatch seen within {timeout}s')


def crash_env(server: RedisServer, delivery: str) -> dict[str, str]:
    return {
        'CRASH_REDIS_URL': server.url,
        'CRASH_BROKER_URL': server.url_for(1),
        'CRASH_LOCK_TIMEOUT': str(LOCK_TIMEOUT),
        'CRASH_DELIVERY': delivery,
        'PYTHONPATH': str(HA_DIR),
    }


@pytest.mark.parametrize(
    ('delivery', 'stop', 'kills'),
    [
        ('at-most-once', signal.SIGKILL, KILLS),
        ('at-least-once', signal.SIGKILL, KILLS),
        ('at-most-once', signal.SIGTERM, 8),
    ],
    ids=['sigkill', 'sigkill-at-least-once', 'sigterm'],
)
def test_leader_stopped_mid_dispatch(
    delivery: str, stop: int, kills: int, tmp_path: Path, redis_server_factory: ServerFactory
) -> None:
    """SIGKILL: what each kill loses is bounded; SIGTERM (a clean stop) loses nothing."""
    server = redis_server_factory()
    conn = server.client(decode_responses=True)
    broker = server.client(db=1, decode_responses=True)
    seed = int(os.environ.get('REDBEAT_HA_SEED') or time.time_ns() % 1_000_000)
    rng = random.Random(seed)
    app = Celery('crash-test')
    app.conf.update(redbeat_redis_url=server.url, timezone='UTC')
    save_entries(
        [RedBeatSchedulerEntry(f'c{i:04d}', TASK, schedule(1.0), args=[i], app=app)
         for i in range(ENTRIES)]
    )  # fmt: skip
    env = crash_env(server, delivery)
    tally = Tally()
    count = [0]

    def beat() -> CeleryProcess:
        count[0] += 1
        proc = start_beat('crashapp', cwd=tmp_path, env=env, log_dir=tmp_path / 'logs',
                          name=f'beat-{count[0]}')  # fmt: skip
        stack.enter_context(proc)
        beats.append(proc)
        return proc

    beats: list[CeleryProcess] = []
    with contextlib.ExitStack() as stack:
        beat()
        beat()
        wait_for(lambda: broker.llen(QUEUE) >= ENTRIES, 60, message='a first dispatch')
        for _ in range(kills):
            time.sleep(rng.uniform(0.1, 0.9))
            token, pid = lock_holder(conn, LOCK_KEY)
            assert pid is not None, 'nobody holds the lock'
            victim = next(b for b in beats if b.pid == pid)
            wait_dispatching(broker)
            time.sleep(rng.uniform(0.0, 0.02))
            hurt_at = time.time()
            if stop == signal.SIGKILL:
                victim.kill()
                drain(broker, tally)  # no beat can send until the lock expires
                tally.unsent_at_kill.append(lost(conn, tally))
            else:  # the lock is released at once: a standby may be sending already
                victim.popen.send_signal(stop)
                victim.popen.wait(15)
            beat()  # a replacement, as a supervisor would start
            locked_at, _, _ = wait_new_holder(conn, token, LOCK_TIMEOUT + 10)
            wait_for(lambda: broker.llen(QUEUE) > 0, 10, interval=0.005, message='a send')
            tally.takeovers.append(locked_at - hurt_at)
            tally.first_sends.append(time.time() - hurt_at)
        # Take the lock away: the leader finishes the group it claimed, then is fenced.
        conn.set(LOCK_KEY, 'test:0:stolen', px=60_000)
        quiet = wait_for(lambda: time.sleep(0.5) or drain(broker, tally) == 0 or None, 20,
                         interval=0, message='the queue stays empty')  # fmt: skip
        assert quiet
        logs = '\n'.join(b.log() for b in beats)
        journal = conn.hgetall('redbeat::journal')

    counts = run_counts(conn)
    claimed = sum(counts.values())
    per_entry = Counter(tally.entry.values())  # distinct task ids per entry
    duplicates = sum(c - 1 for c in tally.ids.values())
    total_lost = claimed - len(tally.ids)
    unsent = tally.unsent_at_kill or [0]
    # at-most-once: what each kill lost; at-least-once: what each kill left to re-send
    per_kill = (
        [b - a for a, b in zip([0, *unsent], unsent)] if delivery == 'at-most-once' else unsent
    )
    takeovers, sends = tally.takeovers, tally.first_sends
    print(
        f'\nCrash loss, {delivery} (seed {seed}): {ENTRIES} entries every 1 s, {kills} '
        f'{signal.Signals(stop).name}s mid-dispatch, lock timeout {LOCK_TIMEOUT:g}s; '
        f'{claimed} occurrences claimed, {len(tally.ids)} distinct task ids in the broker; '
        f'lost {total_lost} (per kill, before any re-send: {per_kill}); duplicates (same id) '
        f'{duplicates}; lock taken {min(takeovers):.2f}-{max(takeovers):.2f}s after the '
        f'kill (mean {sum(takeovers) / len(takeovers):.2f}s), first message in the broker '
        f'{min(sends):.2f}-{max(sends):.2f}s after it; journal left: {len(journal)}'
    )
    assert 'Traceback' not in logs, logs[-3000:]
    # never more ids than occurrences claimed: no occurrence claimed twice
    assert all(per_entry[key] <= claimed_by for key, claimed_by in counts.items())
    if stop == signal.SIGTERM:
        # A stop hands back what the broker does not have (a batch is never cut:
        # the stop signals wait for its write), so it loses nothing.
        assert duplicates == 0, [i for i, c in tally.ids.items() if c > 1]
        assert total_lost == 0
    elif delivery == 'at-most-once':
        assert duplicates == 0, [i for i, c in tally.ids.items() if c > 1]
        assert max(per_kill) <= RedBeatScheduler.publish_group, per_kill
        assert total_lost == unsent[-1]  # nothing lost but at the kills
        assert not journal
    else:
        assert total_lost == 0, per_kill
        # a kill leaves at most the group it cut and the last one sent to be sent again
        assert duplicates <= kills * 2 * RedBeatScheduler.publish_group
        assert per_entry == Counter({k: c for k, c in counts.items() if c})
        assert 'Re-sent' in logs
        assert set(journal) <= set(tally.ids)  # what is left was sent (confirmations pending)
