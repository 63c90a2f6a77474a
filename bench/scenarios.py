"""One benchmark measurement, run in a subprocess with one implementation's interpreter.

``python bench/scenarios.py --impl ours|legacy --scenario NAME --n N
--redis-url URL --broker-url URL`` prints one JSON line of results.

``ours`` is this checkout (the repository root is put first on ``sys.path``);
``legacy`` is celery-redbeat 2.4.2 from the benchmark's own virtualenv.  Both
are imported as ``redbeat`` and share the API used here.  The schedule and the
broker are two private redis-servers, both emptied at the start.

Round trips are counted on the client side: every ``send_packed_command`` of a
redis-py connection to the schedule server is one request written to the
socket and answered before the next (a pipeline or a script is one).  Commands
come from the server (``CONFIG RESETSTAT`` before, ``INFO commandstats`` after;
commands a Lua script calls are counted under their own names).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
QUEUE = 'celery'  # the broker list kombu's Redis transport pushes the default queue to
SCHEDULE_KEY = 'redbeat::schedule'
INTERVAL = 3600.0  # entries' interval: after one run nothing is due for an hour
SCENARIO_NAMES = ('tick', 'start', 'save', 'publish', 'sustained', 'metrics', 'day', 'years', 'mix')
#: Catch-up scenarios: how long ago the entries last ran.
CATCH_UP = ('day', 'years', 'mix')
#: The block --profile covers, per scenario.
PROFILED = {'tick': 'tick', 'start': 'start', 'save': 'bulk', **dict.fromkeys(CATCH_UP, 'tick')}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--impl', choices=('ours', 'legacy'), required=True)
    parser.add_argument('--scenario', required=True, choices=SCENARIO_NAMES)
    parser.add_argument('--n', type=int, required=True)
    parser.add_argument('--redis-url', required=True, help='schedule server (emptied)')
    parser.add_argument('--broker-url', required=True, help='broker server (emptied)')
    parser.add_argument('--minutes', type=int, default=5, help='sustained: minutes to run')
    parser.add_argument('--rounds', type=int, default=7, help='metrics: rounds of each mode')
    parser.add_argument('--idle-ticks', type=int, default=1000, help='metrics: idle ticks a round')
    parser.add_argument(
        '--ours-root', default=str(ROOT), help='ours: the directory holding redbeat/ to import'
    )
    parser.add_argument('--profile', help='write a cProfile of the tick, start or bulk save here')
    parser.add_argument(
        '--profile-block', help="profile this block instead (tick: 'again', the steady state)"
    )
    return parser.parse_args()


ARGS = parse_args()
OURS = Path(ARGS.ours_root).resolve()
if ARGS.impl == 'ours':
    sys.path.insert(0, str(OURS))

import redis  # noqa: E402
from celery import Celery  # noqa: E402
from celery.schedules import crontab, schedule  # noqa: E402
from celery.signals import after_task_publish  # noqa: E402
from redis.connection import AbstractConnection  # noqa: E402

import redbeat  # noqa: E402
from redbeat import RedBeatScheduler, RedBeatSchedulerEntry  # noqa: E402

# --- the implementation under test ----------------------------------------

_FILE = Path(redbeat.__file__).resolve()
if (ARGS.impl == 'ours') != _FILE.is_relative_to(OURS / 'redbeat'):
    sys.exit(f'--impl {ARGS.impl} imported the wrong redbeat: {_FILE}')


def make_app() -> Celery:
    app = Celery('bench', set_as_current=True)
    app.conf.update(
        broker_url=ARGS.broker_url,
        redbeat_redis_url=ARGS.redis_url,
        timezone='UTC',
        result_expires=None,  # no celery.backend_cleanup entry
        beat_max_loop_interval=300,
    )
    if ARGS.impl == 'legacy':
        # celery-redbeat 2.x takes its lock in a beat_init handler; without
        # beat there is none, and its tick must run lockless.
        app.conf.redbeat_lock_key = None

    @app.task(name='bench.noop')
    def noop(*args: Any, **kwargs: Any) -> None:
        return None

    return app


def make_scheduler(app: Celery) -> Any:
    sched = RedBeatScheduler(app=app)
    # Ours waits on the changes channel inside tick() (and returns 0); beat's
    # loop would sleep instead.  The bench times the work, not the sleep.
    if hasattr(sched, 'listen_for_changes'):
        sched.listen_for_changes = False
    return sched


def entry(app: Celery, i: int, sched: Any = None, **kw: Any) -> Any:
    spec = sched if sched is not None else schedule(timedelta(seconds=INTERVAL))
    return RedBeatSchedulerEntry(f'bench-{i:06d}', 'bench.noop', spec, args=[i], app=app, **kw)


# --- measuring --------------------------------------------------------------


class Wire:
    """Counts requests sent to the schedule server (round trips) while active."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sends = 0
        self.active = False
        original = AbstractConnection.send_packed_command
        wire = self

        def counted(conn: Any, command: Any, check_health: bool = True) -> Any:
            if wire.active and getattr(conn, 'port', None) == wire.port:
                wire.sends += 1
            return original(conn, command, check_health)

        AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]


class Probe:
    """Round trips (client side) and commands by name (server side) of a block."""

    def __init__(self, admin: redis.Redis, wire: Wire) -> None:
        self.admin = admin
        self.wire = wire

    @contextlib.contextmanager
    def measure(self, into: dict[str, Any], prefix: str) -> Iterator[None]:
        self.admin.config_resetstat()
        self.wire.sends = 0
        self.wire.active = True
        profiler = None
        if ARGS.profile and prefix == (ARGS.profile_block or PROFILED.get(ARGS.scenario)):
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            self.wire.active = False
            if profiler:
                profiler.disable()
                profiler.dump_stats(ARGS.profile)
            into[f'{prefix}_s'] = elapsed
            into[f'{prefix}_rt'] = self.wire.sends
            commands, script_usec = commands_by_name(self.admin)
            into[f'{prefix}_cmds'] = commands
            into[f'{prefix}_script_s'] = script_usec / 1e6
            into[f'{prefix}_ncmds'] = sum(commands.values())


def commands_by_name(admin: redis.Redis) -> tuple[dict[str, int], int]:
    """Calls per command, and the server's time in scripts (Redis is blocked then), µs."""
    stats = admin.info('commandstats')
    calls = {}
    script_usec = 0
    for name, value in stats.items():
        command = name.removeprefix('cmdstat_')
        if command.split('|')[0] in ('config', 'info'):
            continue  # the probe's own
        calls[command] = int(value['calls'])
        if command in ('eval', 'evalsha', 'fcall'):
            script_usec += int(value['usec'])
    return dict(sorted(calls.items())), script_usec


class Publishes:
    """Timestamps of after_task_publish (time.time())."""

    def __init__(self, keep_all: bool = False) -> None:
        self.first: float | None = None
        self.count = 0
        self.stamps: list[float] = []
        self.keep_all = keep_all
        after_task_publish.connect(self.on_publish, weak=False)

    def on_publish(self, **_: Any) -> None:
        now = time.time()
        if self.first is None:
            self.first = now
        self.count += 1
        if self.keep_all:
            self.stamps.append(now)

    def reset(self) -> None:
        self.first, self.count, self.stamps = None, 0, []


WATCH = """
import sys, time, redis
r = redis.Redis.from_url(sys.argv[1])
p = r.pubsub()
p.subscribe(sys.argv[2])
p.get_message(timeout=5)
print('ready', flush=True)
deadline = time.monotonic() + float(sys.argv[3])
while time.monotonic() < deadline:
    m = p.get_message(timeout=1.0)
    if m and m['type'] == 'message':
        print(repr(time.time()), flush=True)
        break
"""


@contextlib.contextmanager
def first_arrival(broker: redis.Redis, url: str, out: dict[str, float]) -> Iterator[None]:
    """When the first message reached the broker queue (a keyspace notification).

    Watched from another process, so the GIL of the one publishing does not
    delay the observation; kombu's batching may hold messages after
    after_task_publish has fired, so this is the time that counts.
    """
    db = broker.connection_pool.connection_kwargs.get('db', 0)
    broker.config_set('notify-keyspace-events', 'Kl')
    channel = f'__keyspace@{db}__:{QUEUE}'
    cmd = [sys.executable, '-c', WATCH, url, channel, '3600']
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != 'ready':
            raise RuntimeError('first-arrival watcher did not start')
        yield
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        line = proc.stdout.readline().strip() if proc.poll() is not None else ''
        if line:
            out['arrival'] = float(line)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        broker.config_set('notify-keyspace-events', '')


# --- setting up entries -------------------------------------------------------


def store_entries(app: Celery, n: int) -> None:
    """Save ``n`` interval entries in each package's own format (not timed)."""
    old = datetime.now(timezone.utc) - timedelta(seconds=2 * INTERVAL)
    entries = [entry(app, i, last_run_at=old) for i in range(n)]
    if ARGS.impl == 'ours':
        redbeat.save_entries(entries)
    else:
        legacy_bulk_store(entries, old)


def rescore_all(admin: redis.Redis, score: float, schedule_key: str = SCHEDULE_KEY) -> list[str]:
    """Give every member ``score`` (0: "due now" to both packages); the members."""
    keys = [str(k) for k in admin.zrange(schedule_key, 0, -1)]
    with admin.pipeline(transaction=False) as pipe:
        for start in range(0, len(keys), 10_000):
            pipe.zadd(schedule_key, dict.fromkeys(keys[start : start + 10_000], score))
        pipe.execute()
    return keys


def legacy_bulk_store(entries: list[Any], last_run_at: datetime) -> None:
    """What celery-redbeat's ``save()`` writes, pipelined (set-up only, not timed).

    Its meta gets a last run long ago, so its ``is_due`` says due.
    """
    from redbeat.decoder import RedBeatJSONEncoder  # celery-redbeat's

    client = redis.Redis.from_url(ARGS.redis_url, decode_responses=True)
    meta = json.dumps({'last_run_at': last_run_at}, cls=RedBeatJSONEncoder)
    with client.pipeline(transaction=False) as pipe:
        for e in entries:
            definition = {
                'name': e.name,
                'task': e.task,
                'args': e.args,
                'kwargs': e.kwargs,
                'options': e.options,
                'schedule': e.schedule,
                'enabled': e.enabled,
            }
            pipe.hset(e.key, 'definition', json.dumps(definition, cls=RedBeatJSONEncoder))
            pipe.hsetnx(e.key, 'meta', meta)
            pipe.zadd(SCHEDULE_KEY, {e.key: e.score})
            if len(pipe) >= 30_000:
                pipe.execute()
        pipe.execute()


# --- scenarios ------------------------------------------------------------------


def run_tick(app: Celery, env: Env) -> dict[str, Any]:
    """One tick with all N due, the first message, an idle tick, memory per entry."""
    out: dict[str, Any] = {}
    mem0 = env.admin.info('memory')['used_memory']
    sched = make_scheduler(app)
    store_entries(app, ARGS.n)
    rescore_all(env.admin, time.time() + INTERVAL)
    # Warm-up as in a beat that has been running: an idle tick (connections,
    # scripts, lock) and one message through the scheduler's producer.
    sched.tick()
    app.tasks['bench.noop'].apply_async((0,), producer=sched.producer)
    env.broker.delete(QUEUE)
    keys = rescore_all(env.admin, 0)
    publishes = Publishes()
    arrival: dict[str, float] = {}
    with first_arrival(env.broker, ARGS.broker_url, arrival), env.probe.measure(out, 'tick'):
        wall = time.time()
        sched.tick()
    out['first_signal_s'] = None if publishes.first is None else publishes.first - wall
    out['first_arrival_s'] = arrival['arrival'] - wall if 'arrival' in arrival else None
    out['published'] = publishes.count
    out['queue_len'] = env.broker.llen(QUEUE)
    out['still_due'] = env.admin.zcount(SCHEDULE_KEY, 0, time.time())
    with env.probe.measure(out, 'idle'):
        sched.tick()
    out['idle_published'] = publishes.count - out['published']
    out['mem_growth_per_entry'] = (env.admin.info('memory')['used_memory'] - mem0) / ARGS.n
    sample = keys[:: max(1, len(keys) // 200)]
    hashes = statistics.mean(env.admin.memory_usage(k, samples=0) or 0 for k in sample)
    zset = env.admin.memory_usage(SCHEDULE_KEY, samples=0) or 0
    out['mem_hash_b'] = hashes
    out['mem_zset_per_entry'] = zset / ARGS.n
    out['mem_sample_per_entry'] = hashes + zset / ARGS.n
    out['keys_per_entry'] = env.admin.dbsize() / ARGS.n
    out['sample_definition'] = env.admin.hget(keys[0], 'definition')
    out['sample_meta'] = env.admin.hget(keys[0], 'meta')
    if ARGS.impl == 'ours':
        # The same N due again: the steady state of a fan-out that recurs (every
        # hour, say), where definitions, arguments and run state are known.
        # (Score 0 means "due now" to ours; celery-redbeat would look at its
        # meta, which says it just ran, and send nothing.)
        env.broker.delete(QUEUE)
        rescore_all(env.admin, 0)
        before = publishes.count
        with env.probe.measure(out, 'again'):
            sched.tick()
        out['again_published'] = publishes.count - before
        out['again_queue_len'] = env.broker.llen(QUEUE)
    # What the entries hold: the used_memory that emptying the database frees.
    # Growth since the start (mem_growth_per_entry) also moves with fixed costs
    # of the server: Redis 7 allocates a latency histogram (about 25 KB) for a
    # command name at its first call and frees them all at CONFIG RESETSTAT,
    # so the package measured first on a fresh server paid ~27 B an entry
    # more at 10k.  Tracking is off while the two figures are read, so
    # FLUSHDB allocates none.
    latency_tracking = env.admin.config_get('latency-tracking').get('latency-tracking')
    if latency_tracking:  # Redis < 7 has no such histograms
        env.admin.config_set('latency-tracking', 'no')
    used = env.admin.info('memory')['used_memory']
    env.admin.flushdb()
    out['mem_used_per_entry'] = (used - env.admin.info('memory')['used_memory']) / ARGS.n
    if latency_tracking:
        env.admin.config_set('latency-tracking', latency_tracking)
    out['maxrss_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def run_start(app: Celery, env: Env) -> dict[str, Any]:
    """Beat start with N static beat_schedule entries: empty Redis, then a restart."""
    app.conf.beat_schedule = {
        f'static-{i:06d}': {
            'task': 'bench.noop',
            'schedule': schedule(timedelta(seconds=INTERVAL)),
            'args': [i],
        }
        for i in range(ARGS.n)
    }
    out: dict[str, Any] = {}
    with env.probe.measure(out, 'start'):
        make_scheduler(app)
    with env.probe.measure(out, 'restart'):
        make_scheduler(app)
    out['stored'] = env.admin.zcard(SCHEDULE_KEY)
    return out


def run_save(app: Celery, env: Env) -> dict[str, Any]:
    """Bulk save of N new entries, then single saves (N stored) and a re-save."""
    out: dict[str, Any] = {}
    entries = [entry(app, i) for i in range(ARGS.n)]
    with env.probe.measure(out, 'bulk'):
        if ARGS.impl == 'ours':
            redbeat.save_entries(entries)
        else:  # celery-redbeat has no bulk API: one save() per entry
            for e in entries:
                e.save()
    out['bulk_api'] = ARGS.impl == 'ours'
    out['stored'] = env.admin.zcard(SCHEDULE_KEY)
    singles = [entry(app, ARGS.n + i) for i in range(200)]
    times = []
    for e in singles:
        start = time.perf_counter()
        e.save()
        times.append(time.perf_counter() - start)
    out['save1_median_s'] = statistics.median(times)
    with env.probe.measure(out, 'save1'):
        entry(app, ARGS.n + 1000).save()
    with env.probe.measure(out, 'resave1'):
        singles[0].save()
    return out


def run_publish(app: Celery, env: Env) -> dict[str, Any]:
    """Celery alone: apply_async one by one, and inside kombu's producer.batch(); the
    same messages ready made, LPUSHed 20 a round trip (the floor of a push)."""
    task = app.tasks['bench.noop']
    out: dict[str, Any] = {}
    task.apply_async((0,))  # warm-up: connection, queue declaration
    env.broker.delete(QUEUE)
    start = time.perf_counter()
    for i in range(ARGS.n):
        task.apply_async((i,))
    out['single_per_msg_s'] = (time.perf_counter() - start) / ARGS.n
    out['single_queue_len'] = env.broker.llen(QUEUE)
    env.broker.delete(QUEUE)
    start = time.perf_counter()
    with app.producer_or_acquire() as producer, producer.batch():
        for i in range(ARGS.n):
            task.apply_async((i,), producer=producer)
    out['batch_per_msg_s'] = (time.perf_counter() - start) / ARGS.n
    out['batch_queue_len'] = env.broker.llen(QUEUE)
    # The floor of a push: the same messages, ready, LPUSHed 20 to a round trip
    # (one pipelined LPUSH per group, as beat's direct pushes write them).
    texts = env.broker.lrange(QUEUE, 0, -1)[::-1]
    env.broker.delete(QUEUE)
    start = time.perf_counter()
    for i in range(0, len(texts), 20):
        with env.broker.pipeline(transaction=False) as pipe:
            pipe.lpush(QUEUE, *texts[i : i + 20])
            pipe.execute()
    out['lpush_per_msg_s'] = (time.perf_counter() - start) / ARGS.n
    out['lpush_queue_len'] = env.broker.llen(QUEUE)
    return out


def run_sustained(app: Celery, env: Env) -> dict[str, Any]:
    """N entries due every minute (crontab '*'), ticking in a loop for --minutes."""
    if ARGS.impl != 'ours':
        raise SystemExit('sustained runs ours only')
    every_minute = crontab(minute='*')
    # Save early in a minute, so that every entry's first occurrence is the
    # next :00 (a save running across :00 would split them over two minutes).
    if time.time() % 60 > 5:
        time.sleep(61 - time.time() % 60)
    first = (int(time.time()) // 60 + 1) * 60
    redbeat.save_entries([entry(app, i, sched=every_minute) for i in range(ARGS.n)])
    sched = make_scheduler(app)
    publishes = Publishes(keep_all=True)
    if time.time() >= first:
        raise SystemExit('sustained: saving the entries took more than 55 s')
    end = first + 60 * ARGS.minutes
    expected = ARGS.n * ARGS.minutes
    queued: list[int] = []
    # Until every occurrence of the last minute is sent; at most 2 minutes late.
    while len(publishes.stamps) < expected and time.time() < end + 120:
        wait = sched.tick()
        if publishes.stamps and time.time() - publishes.stamps[-1] > 1.0:
            length = int(env.broker.llen(QUEUE))
            if length:
                queued.append(length)
                env.broker.unlink(QUEUE)  # keep the broker small; counted first
        time.sleep(min(max(wait, 0.0), 1.0))
    # Every entry is sent once a minute, earliest due first: minute m's
    # occurrences are the m-th block of N messages in publish order.
    stamps = publishes.stamps
    minutes = []
    for m in range(ARGS.minutes):
        block = stamps[m * ARGS.n : (m + 1) * ARGS.n]
        start = first + 60 * m
        minutes.append(
            {
                'minute': m + 1,
                'sent': len(block),
                'first_s': (block[0] - start) if block else None,
                'last_s': (block[-1] - start) if block else None,
            }
        )
    early = sum(1 for t in stamps if t < first)
    return {'minutes': minutes, 'queued': queued, 'sent_before_first_minute': early}


def run_metrics(app: Celery, env: Env) -> dict[str, Any]:
    """The cost of metrics (ours): a tick with N due and an idle tick, metrics off and on.

    One scheduler serving metrics on a free 127.0.0.1 port; "off" swaps in the
    observer beat has with metrics off (it does nothing), so both modes run
    the same code on the same entries and connections, apart from what
    metrics add.  Rounds alternate which mode goes first; each round times
    one tick with all N due (steady state: the same N were sent before) and
    ``--idle-ticks`` idle ticks (median), in wall and in CPU time.  Reported:
    the median over rounds, and the median of the rounds' on/off ratios.
    """
    if ARGS.impl != 'ours':
        sys.exit('the metrics scenario measures ours only')
    from redbeat.metrics import Observer

    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    app.conf.update(redbeat_metrics=port, redbeat_metrics_address='127.0.0.1')
    sched = make_scheduler(app)
    observers = {'off': Observer(), 'on': sched.observer}
    modes = ('off', 'on')
    redbeat.save_entries([entry(app, i) for i in range(ARGS.n)])
    rescore_all(env.admin, 0)
    sched.tick()  # start-up, lock, and a first (cold) tick of all N
    env.broker.delete(QUEUE)
    publishes = Publishes()
    # Wall time, and this process's CPU time: the work metrics add is CPU in this
    # process, and CPU time is far less disturbed by other load on a shared machine.
    series: dict[str, list[float]] = {
        f'{what}_{mode}': [] for what in ('tick', 'idle', 'tick_cpu', 'idle_cpu') for mode in modes
    }
    sent: dict[str, list[int]] = {mode: [] for mode in modes}
    for r in range(ARGS.rounds):
        for mode in modes if r % 2 == 0 else modes[::-1]:
            sched.observer = sched.leader.observer = observers[mode]
            rescore_all(env.admin, 0)
            before = publishes.count
            start, cpu = time.perf_counter(), time.process_time()
            sched.tick()
            series[f'tick_{mode}'].append(time.perf_counter() - start)
            series[f'tick_cpu_{mode}'].append(time.process_time() - cpu)
            sent[mode].append(publishes.count - before)
            env.broker.delete(QUEUE)
            idle, idle_cpu = [], []
            for _ in range(ARGS.idle_ticks):
                start, cpu = time.perf_counter(), time.process_time()
                sched.tick()
                idle.append(time.perf_counter() - start)
                idle_cpu.append(time.process_time() - cpu)
            series[f'idle_{mode}'].append(statistics.median(idle))
            # process_time ticks in coarse steps: the mean of many ticks, not the median
            series[f'idle_cpu_{mode}'].append(statistics.mean(idle_cpu))
    with urllib.request.urlopen(f'http://127.0.0.1:{port}/metrics', timeout=10) as reply:
        scraped = reply.read().decode()
    out: dict[str, Any] = {'rounds': ARGS.rounds, 'idle_ticks': ARGS.idle_ticks}
    for name, values in series.items():
        out[f'{name}_s'] = statistics.median(values)
        out[f'{name}_all'] = values
    for what in ('tick', 'idle', 'tick_cpu', 'idle_cpu'):
        # each round's on/off ratio, then their median: slow drifts of the machine cancel
        pairs = zip(series[f'{what}_off'], series[f'{what}_on'])
        out[f'{what}_overhead'] = statistics.median(on / off - 1 for off, on in pairs)
    out.update({f'sent_{mode}': sent[mode] for mode in modes})
    # sent while on: the rounds' ticks and the first one
    out['scraped_sent'] = sum(
        float(line.split()[-1])
        for line in scraped.splitlines()
        if line.startswith('redbeat_occurrences_sent_total{')
    )
    out['load'] = os.getloadavg()
    return out


def catch_up_entry(app: Celery, i: int, last_run_at: datetime) -> Any:
    """Entry ``i`` of a catch-up scenario: every minute, or (``mix``) one of an
    interval, a crontab and an rrule, ours with a time zone of its own."""
    if ARGS.scenario != 'mix' or i % 3 == 0:
        return entry(app, i, schedule(timedelta(seconds=60)), last_run_at=last_run_at)
    zone = ('Europe/Paris', 'America/New_York', 'Asia/Kolkata', 'Australia/Sydney')[i % 4]
    policy = {'policy': {'timezone': zone}} if ARGS.impl == 'ours' else {}
    if i % 3 == 1:
        return entry(app, i, crontab(minute='*'), last_run_at=last_run_at, **policy)
    from redbeat.schedules import rrule

    # Hourly from three days ago: dateutil walks a rule from its dtstart at every
    # question, in both packages, so an old dtstart would measure dateutil.
    dtstart = (datetime.now(timezone.utc) - timedelta(days=3)).replace(minute=i % 60, second=0)
    return entry(app, i, rrule('HOURLY', dtstart=dtstart), last_run_at=last_run_at, **policy)


def run_catch_up(app: Celery, env: Env) -> dict[str, Any]:
    """One tick after an outage: N entries last run a day ago (or in 2000), every one
    of them due with many missed occurrences.  Both packages send each once."""
    out: dict[str, Any] = {}
    now = datetime.now(timezone.utc)
    last = datetime(2000, 1, 1, tzinfo=timezone.utc) if ARGS.scenario == 'years' else now
    if ARGS.scenario != 'years':
        last -= timedelta(days=1)
    sched = make_scheduler(app)
    entries = [catch_up_entry(app, i, last) for i in range(ARGS.n)]
    if ARGS.impl == 'ours':
        redbeat.save_entries(entries)
    else:
        legacy_bulk_store(entries, last)
    rescore_all(env.admin, time.time() + INTERVAL)
    sched.tick()  # warm-up: connections, scripts, lock
    app.tasks['bench.noop'].apply_async((0,), producer=sched.producer)
    env.broker.delete(QUEUE)
    # Due since the first occurrence after the last run (a minute after it, or
    # less): the score each package would hold had beat been down since.
    rescore_all(env.admin, last.timestamp() + 60)
    publishes = Publishes()
    with env.probe.measure(out, 'tick'):
        wall = time.time()
        sched.tick()
    out['first_signal_s'] = None if publishes.first is None else publishes.first - wall
    out['published'] = publishes.count
    out['queue_len'] = env.broker.llen(QUEUE)
    out['still_due'] = env.admin.zcount(SCHEDULE_KEY, 0, time.time())
    out['maxrss_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


class Env:
    def __init__(self) -> None:
        self.admin = redis.Redis.from_url(ARGS.redis_url, decode_responses=True)
        self.broker = redis.Redis.from_url(ARGS.broker_url)
        self.admin.flushdb()
        self.broker.flushdb()
        port = self.admin.connection_pool.connection_kwargs['port']
        self.probe = Probe(self.admin, Wire(int(port)))


SCENARIOS: dict[str, Callable[[Celery, Env], dict[str, Any]]] = {
    'tick': run_tick,
    'start': run_start,
    'save': run_save,
    'publish': run_publish,
    'sustained': run_sustained,
    'metrics': run_metrics,
    'day': run_catch_up,
    'years': run_catch_up,
    'mix': run_catch_up,
}


def fingerprint(package: Path) -> str:
    """A short hash of the package's source, to notice code changing during a run."""
    digest = hashlib.sha1()
    for path in sorted(package.rglob('*')):
        if path.suffix in ('.py', '.lua'):
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def main() -> None:
    env = Env()
    app = make_app()
    result = SCENARIOS[ARGS.scenario](app, env)
    version = getattr(redbeat, '__version__', None)
    if version is None:
        from importlib.metadata import version as dist_version

        version = dist_version('celery-redbeat')
    result.update(impl=ARGS.impl, scenario=ARGS.scenario, n=ARGS.n, version=version)
    result['module'] = str(_FILE.parent)
    result['code'] = fingerprint(_FILE.parent)
    print(json.dumps(result))
    os._exit(0)  # skip Celery's pools' slow teardown


if __name__ == '__main__':
    main()
