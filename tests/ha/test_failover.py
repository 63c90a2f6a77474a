"""Fault injection with real processes: leaders killed and paused, Redis and broker down.

Every test counts executions per occurrence on the worker side (see
:mod:`tests.e2e.harness`): no occurrence may run twice, and occurrences may
only be missing inside an outage window (from the fault to the first message
sent after it: missed occurrences collapse into one run at takeover, the
documented policy).  Measured figures are printed (run with ``-s``).
"""

from __future__ import annotations

import math
import os
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from celery import Celery
from celery.schedules import schedule

from redbeat import RedBeatSchedulerEntry
from tests.e2e.harness import (
    TASK,
    Cluster,
    Execution,
    Outage,
    app_env,
    cluster,
    duplicates,
    lock_holder,
    redelivered,
    unexcused_gaps,
)
from tests.ha.conftest import Takeover, first_send_by, summary, wait_new_holder
from tests.procs import wait_for
from tests.redis_server import RedisServer

pytestmark = pytest.mark.ha

ServerFactory = Callable[..., RedisServer]


def entries(prefix: str, n: int, every: float = 1.0) -> dict[str, float]:
    return {f'{prefix}-{i:02d}': every for i in range(n)}


def start(c: Cluster, beats: int) -> None:
    c.wait_ready(c.worker())
    for _ in range(beats):
        c.beat()


def wait_all_ran(c: Cluster, names: dict[str, float], n: int, since: float, timeout: float) -> None:
    wait_for(
        lambda: all(c.records.count(name, since) >= n for name in names),
        timeout,
        interval=0.1,
        message=f'every entry ran {n} times',
    )


def stop_beats_and_drain(c: Cluster, drain: float = 1.5) -> None:
    """Stop every beat, then give the worker time to run what was already sent."""
    for beat in c.beats:
        if beat.alive:
            beat.stop(timeout=10)
    time.sleep(drain)


def assert_no_tracebacks(c: Cluster) -> None:
    for beat in c.beats:
        assert 'Traceback' not in beat.log(), f'{beat.name}: {beat.log()[-3000:]}'


def missed(records: list[Execution], interval: float) -> int:
    """Occurrences that collapsed into one run (gaps of several intervals)."""
    by_entry: dict[str, list[float]] = {}
    for e in records:
        by_entry.setdefault(e.entry, []).append(e.at)
    total = 0
    for times in by_entry.values():
        times.sort()
        total += sum(max(0, round((b - a) / interval) - 1) for a, b in zip(times, times[1:]))
    return total


def test_leader_killed_repeatedly_no_duplicates(
    tmp_path: Path, redis_server_factory: ServerFactory
) -> None:
    """Three beats, 20 entries every second, the leader SIGKILLed 5 times."""
    lock_timeout, kills = 2.0, 5
    names = entries('storm', 20)
    server = redis_server_factory()
    conn = server.client(decode_responses=True)
    seed = int(os.environ.get('REDBEAT_HA_SEED') or time.time_ns() % 1_000_000)
    rng = random.Random(seed)
    env = app_env(tmp_path, server.url, server.url_for(1), lock_timeout=lock_timeout,
                  static=names)  # fmt: skip
    takeovers: list[Takeover] = []
    with cluster(tmp_path, env) as c:
        start(c, beats=3)
        started = time.time()
        wait_all_ran(c, names, 2, started, timeout=30)
        for i in range(kills):
            time.sleep(rng.uniform(0.5, 3.0))
            if i % 2:  # aim at a dispatch: all entries are sent in the same tick
                last = max(e.at for e in c.records.all())
                due = last + math.ceil(time.time() - last + 0.05)
                time.sleep(max(0.0, due - time.time() + rng.uniform(0.0, 0.012)))
            token, pid = lock_holder(conn)
            assert pid is not None, 'nobody holds the lock'
            victim = c.by_pid(pid)
            hurt_at = time.time()
            victim.kill()
            c.beat()  # a replacement, as a supervisor would start
            locked_at, _, new_pid = wait_new_holder(conn, token, lock_timeout + 10)
            first = first_send_by(c.records, new_pid, hurt_at, timeout=15)
            takeovers.append(Takeover(hurt_at, locked_at, first, pid, new_pid))
        time.sleep(3.0)
        end = time.time()
        assert_no_tracebacks(c)
        stop_beats_and_drain(c)
        runs = c.records.all()
        outages = [Outage(t.hurt_at, t.first_send_at) for t in takeovers]
        print(f'\nHA storm (seed {seed}): {len(runs)} executions, {len(names)} entries, '
              f'{kills} SIGKILLs, lock timeout {lock_timeout}s; occurrences collapsed '
              f'into takeover runs: {missed(runs, 1.0)}\n{summary(takeovers)}')  # fmt: skip
        assert not duplicates(runs, 1.0)
        assert not unexcused_gaps(runs, 1.0, outages)
        for name in names:
            assert max(e.at for e in runs if e.entry == name) > end - 2.5, f'{name} stopped'
        for t in takeovers:
            assert t.lock_after <= lock_timeout + 1.5, summary(takeovers)
            assert t.send_after <= lock_timeout + 2.5, summary(takeovers)


def test_paused_leader_is_fenced_and_becomes_standby(
    tmp_path: Path, redis_server_factory: ServerFactory
) -> None:
    """SIGSTOP the leader past its lock timeout; a standby leads; SIGCONT the old one."""
    lock_timeout = 2.0
    names = entries('pause', 10)
    server = redis_server_factory()
    conn = server.client(decode_responses=True)
    env = app_env(tmp_path, server.url, server.url_for(1), lock_timeout=lock_timeout,
                  static=names)  # fmt: skip
    with cluster(tmp_path, env) as c:
        start(c, beats=2)
        wait_all_ran(c, names, 2, time.time(), timeout=30)
        token, pid = lock_holder(conn)
        assert pid is not None
        old = c.by_pid(pid)
        paused_at = time.time()
        os.kill(pid, signal.SIGSTOP)
        try:
            locked_at, _, new_pid = wait_new_holder(conn, token, lock_timeout + 10)
            first = first_send_by(c.records, new_pid, paused_at, timeout=15)
            time.sleep(1.0)
            marker = len(old.log())
        finally:
            resumed_at = time.time()
            os.kill(pid, signal.SIGCONT)
        wait_for(lambda: 'Lost lock' in old.log()[marker:], 10, message='old leader noticed')
        noticed = time.time() - resumed_at
        time.sleep(4.0)
        late = [e for e in c.records.all() if e.sender_pid == pid and e.at > resumed_at]
        after = old.log()[marker:]
        holder_now = lock_holder(conn)[1]
        old_alive = old.alive
        assert_no_tracebacks(c)
        stop_beats_and_drain(c)
        runs = c.records.all()
        t = Takeover(paused_at, locked_at, first, pid, new_pid)
        print(f'\nSIGSTOP: {summary([t])}\n  old leader logged the loss '
              f'{noticed:.2f}s after SIGCONT; sends by it after SIGCONT: {len(late)}')  # fmt: skip
        assert old_alive
        assert not late, late
        assert 'Lost lock' in after and 'now standby' in after, after
        assert holder_now == new_pid
        assert not duplicates(runs, 1.0)
        assert not unexcused_gaps(runs, 1.0, [Outage(paused_at, first)])
        assert t.lock_after <= lock_timeout + 1.5


def test_clean_stop_hands_over_at_once(tmp_path: Path, redis_server_factory: ServerFactory) -> None:
    """SIGTERM the leader: it releases the lock and a standby leads within a poll."""
    lock_timeout = 10.0  # the default: takeover must not wait for it
    names = entries('term', 5)
    server = redis_server_factory()
    conn = server.client(decode_responses=True)
    env = app_env(tmp_path, server.url, server.url_for(1), lock_timeout=lock_timeout,
                  static=names)  # fmt: skip
    with cluster(tmp_path, env) as c:
        start(c, beats=2)
        wait_all_ran(c, names, 2, time.time(), timeout=30)
        token, pid = lock_holder(conn)
        assert pid is not None
        stopped_at = time.time()
        c.by_pid(pid).popen.send_signal(signal.SIGTERM)
        locked_at, _, new_pid = wait_new_holder(conn, token, lock_timeout + 10)
        first = first_send_by(c.records, new_pid, stopped_at, timeout=15)
        time.sleep(2.0)
        stop_beats_and_drain(c)
        runs = c.records.all()
        t = Takeover(stopped_at, locked_at, first, pid, new_pid)
        print(f'\nSIGTERM (lock timeout {lock_timeout:g}s): {summary([t])}')
        assert t.lock_after <= 1.5, summary([t])
        assert not duplicates(runs, 1.0)
        assert not unexcused_gaps(runs, 1.0, [Outage(stopped_at, first)])


def test_redis_crash_with_aof_is_survived(
    tmp_path: Path, redis_server_factory: ServerFactory
) -> None:
    """redis-server (schedule and broker, AOF fsync always) SIGKILLed for 2 s mid-run."""
    names = entries('aof', 10)
    server = redis_server_factory(appendonly=True)
    env = app_env(tmp_path, server.url, server.url_for(1), lock_timeout=3, static=names)
    with cluster(tmp_path, env) as c:
        start(c, beats=2)
        wait_all_ran(c, names, 2, time.time(), timeout=30)
        down = time.time()
        server.kill()
        time.sleep(2.0)
        server.start()
        up = time.time()
        wait_all_ran(c, names, 3, up, timeout=30)
        first = min(e.at for e in c.records.all() if e.at > up)
        time.sleep(1.0)
        assert all(b.alive for b in c.beats), 'a beat died with Redis'
        logs = '\n'.join(b.log() for b in c.beats)
        stop_beats_and_drain(c)
        runs = c.records.all()
        again = redelivered(runs)
        print(f'\nRedis crash (AOF): down {up - down:.2f}s; first send {first - up:.2f}s '
              f'after restart; {missed(runs, 1.0)} occurrences collapsed; messages the '
              f'broker redelivered: {len(again)} {again}')  # fmt: skip
        assert 'Traceback' not in logs, logs[-3000:]
        assert 'WARNING/MainProcess] beat: Redis error' in logs
        # The worker's acknowledgement of a message it ran can die with Redis: kombu
        # then hands that message out again, flagged "redelivered", with the stamp of
        # its one publish.  That is the broker's at-least-once delivery, not beat's:
        # beat must never have published an occurrence twice (a second stamp), and
        # nothing but such a message may run twice.
        assert not duplicates(runs, 1.0, redelivery_allowed=True)
        assert not unexcused_gaps(runs, 1.0, [Outage(down, first)])


def test_broker_down_then_back(tmp_path: Path, redis_server_factory: ServerFactory) -> None:
    """The broker (its own redis-server) stops for 5 s; failed publishes are retried."""
    names = entries('bk', 5)
    schedule_server = redis_server_factory()
    broker = redis_server_factory(appendonly=True)
    env = app_env(tmp_path, schedule_server.url, broker.url, lock_timeout=3, static=names)
    app = Celery('ha-test')
    app.conf.update(redbeat_redis_url=schedule_server.url, timezone='UTC')
    with cluster(tmp_path, env) as c:
        start(c, beats=2)
        wait_all_ran(c, names, 2, time.time(), timeout=30)
        # One occurrence of 'bk-slow' falls in the middle of the outage: if its
        # failed publish is retried it runs right after the broker is back; if
        # it were lost it would only run at its next occurrence, 10 s later.
        saved_at = time.time()
        RedBeatSchedulerEntry('bk-slow', TASK, schedule(10), args=['bk-slow'], app=app).save()
        time.sleep(7.5)
        down = time.time()
        broker.stop()
        time.sleep(5.0)
        broker.start()
        up = time.time()
        wait_all_ran(c, names, 2, up, timeout=30)
        wait_for(lambda: c.records.count('bk-slow') >= 1, 30, message='bk-slow ran')
        time.sleep(max(0.0, up + 6.5 - time.time()))
        alive = [b.alive for b in c.beats]
        logs = '\n'.join(b.log() for b in c.beats)
        stop_beats_and_drain(c)
        runs = c.records.all()
        fast = [e for e in runs if e.entry != 'bk-slow']
        slow = c.records.of('bk-slow')
        first = min(e.at for e in fast if e.at > up)
        print(f'\nBroker down {up - down:.2f}s: first send {first - up:.2f}s after it was '
              f'back; bk-slow due at +{saved_at + 10 - down:.1f}s into the outage, sent '
              f'{[round(e.at - up, 2) for e in slow]}s after it was back; "handed back" '
              f'warnings: {logs.count("handed back")}; lost lock: {logs.count("Lost lock")}; '
              f'{missed(fast, 1.0)} occurrences collapsed')  # fmt: skip
        assert all(alive)
        assert 'handed back to be sent again' in logs
        assert 'Traceback' not in logs, logs[-3000:]
        assert not duplicates(fast, 1.0, broker_back_at=up)
        assert not duplicates(slow, 10.0)
        assert not unexcused_gaps(fast, 1.0, [Outage(down, first)])
        assert len(slow) == 1, slow
        assert saved_at + 9.9 <= slow[0].at <= up + 3.0, (slow[0].at - saved_at, slow[0].at - up)
    app.close()
