"""Lateness of real ``celery beat`` + ``celery worker`` processes: N entries due at one instant.

``python bench/lateness.py --impl ours|legacy --n N --redis-url URL --broker-url URL
[--runs 20] [--period 10]`` prints one JSON line (bench/run.py runs it with each
implementation's interpreter, ``--scenarios lateness``).

N entries, ``rrule('SECONDLY', interval=PERIOD, dtstart=T0)``, are saved with the
implementation's own API; then a worker and beat are started and RUNS bursts
are measured, the k-th due at exactly ``T0 + k * PERIOD`` for every entry.  An
rrule is used because its occurrences are a fixed grid in both packages: an
interval entry in celery-redbeat 2.x is next due at its *send* time plus the
interval (Celery's ``last_run_at = now()``), so its bursts would spread and
shift by their own lateness; ``crontab(minute='*')`` is exact too, but a burst
a minute makes 20 runs take 20 minutes.  ``--schedule interval`` measures
interval entries instead (exact in ours: next due = last due + interval).
Note that python-dateutil walks an rrule from its start: each question about
an rrule costs more as bursts go by (ours bounds the walk to 1,000-2,000
periods), which shows as drift.

* **Send lateness**: the moment each message reached the broker queue minus
  its due time.  This process watches the broker with ``MONITOR``, which
  gives each command the server's own time of execution: every ``LPUSH`` onto
  the queue stamps each message it carries (kombu's transport pushes one
  message per command; ours pushes a group's messages in one command, several
  values), counted by their ``delivery_tag`` properties.
* **Execution lateness**: the task records ``time.time()`` when it starts, into
  a Redis list on the broker server; minus its due time.

Each stamp belongs to the latest burst due at or before it (lateness is far
below the period; every burst must count exactly N sends and N executions,
checked).  Beat runs as users run it (``celery -A app beat -S
redbeat.RedBeatScheduler``, default log level), with the lock; the worker
with a thread pool, so that executions wait on the scheduler, not on a
process pool.  Both packages' runs use the same worker interpreter and
settings (``--worker-python``, ``--concurrency``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
QUEUE = 'celery'
EXEC_KEY = 'lateness:exec'
MODULE_KEY = 'lateness:beat-module'
LOCK_KEY = 'redbeat::lock'


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--impl', choices=('ours', 'legacy'), required=True)
    parser.add_argument('--scenario', default='lateness', choices=('lateness',))
    parser.add_argument('--n', type=int, required=True, help='entries due at each instant')
    parser.add_argument('--redis-url', required=True, help='schedule server (emptied)')
    parser.add_argument('--broker-url', required=True, help='broker server (emptied)')
    parser.add_argument('--runs', type=int, default=20, help='bursts measured')
    parser.add_argument('--period', type=int, default=10, help='seconds between bursts')
    parser.add_argument('--lead', type=float, default=15.0, help='seconds from save to 1st burst')
    parser.add_argument('--concurrency', type=int, default=4, help='worker threads')
    parser.add_argument(
        '--schedule',
        choices=('rrule', 'interval'),
        default='rrule',
        help='rrule: exact for both packages; interval: exact for ours only',
    )
    parser.add_argument('--worker-python', default=sys.executable, help='interpreter of the worker')
    parser.add_argument(
        '--ours-root', default=str(ROOT), help='ours: the directory holding redbeat/ to import'
    )
    parser.add_argument('--profile-beat', help='run beat under cProfile, write the stats here')
    return parser.parse_args()


ARGS = parse_args()
OURS = Path(ARGS.ours_root).resolve()
if ARGS.impl == 'ours':
    sys.path.insert(0, str(OURS))

import redis  # noqa: E402
from celery import Celery  # noqa: E402
from celery.schedules import schedule  # noqa: E402

import redbeat  # noqa: E402
from redbeat import RedBeatSchedulerEntry  # noqa: E402
from redbeat.schedules import rrule  # noqa: E402

#: The Celery app beat and the worker load (written to a temporary directory).
APP_MODULE = '''
"""The lateness benchmark's app: one task recording when it started."""
import os
import time

import redis
from celery import Celery
from celery.signals import beat_init

app = Celery('latebench', broker=os.environ['LATE_BROKER_URL'], set_as_current=True)
app.conf.update(
    redbeat_redis_url=os.environ['LATE_REDIS_URL'],
    timezone='UTC',
    result_expires=None,  # no celery.backend_cleanup entry
    task_ignore_result=True,
    worker_hijack_root_logger=False,
)
_broker = redis.Redis.from_url(os.environ['LATE_BROKER_URL'])


@app.task(name='latebench.record')
def record(i):
    started = time.time()
    _broker.rpush('lateness:exec', repr(started))


@beat_init.connect
def _which_redbeat(sender=None, **kwargs):
    """Tell the benchmark which redbeat this beat imported."""
    import redbeat

    _broker.set('lateness:beat-module', redbeat.__file__)
'''


def percentile(values: list[float], p: float) -> float:
    """Nearest rank: the smallest value with at least ``p`` of them at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p * len(ordered)) - 1)]


def summary(values: list[float]) -> dict[str, float]:
    return {
        'p50': percentile(values, 0.5),
        'p99': percentile(values, 0.99),
        'max': max(values),
        'min': min(values),
    }


def by_run(stamps: list[float], first: float, period: int, runs: int) -> list[list[float]]:
    """Lateness of each stamp in the burst it belongs to (the latest due at or before it)."""
    bursts: list[list[float]] = [[] for _ in range(runs)]
    for t in stamps:
        k = math.floor((t - first) / period)
        if 0 <= k < runs:
            bursts[k].append(t - (first + k * period))
    return bursts


def series(stamps: list[float], first: float) -> dict[str, Any]:
    """Overall percentiles, per-run p99, and the drift (least-squares slope of p99 per run)."""
    bursts = by_run(stamps, first, ARGS.period, ARGS.runs)
    out: dict[str, Any] = {
        'counts': [len(b) for b in bursts],
        'outside': len(stamps) - sum(len(b) for b in bursts),
    }
    values = [v for b in bursts for v in b]
    if not values:
        return out
    out.update(summary(values))
    # After the first burst: the first also pays for beat's lazy start-up (the
    # broker connection, kombu's transport import, the first messages' rendering).
    later = [v for b in bursts[1:] for v in b]
    if later:
        out['later'] = summary(later)
    p99s = [percentile(b, 0.99) if b else math.nan for b in bursts]
    out['run_p99'] = p99s
    out['run_p50'] = [percentile(b, 0.5) if b else math.nan for b in bursts]
    full = [(k, v) for k, v in enumerate(p99s) if not math.isnan(v)]
    if len(full) >= 2:
        slope, _ = statistics.linear_regression([k for k, _ in full], [v for _, v in full])
        out['drift_slope'] = slope  # seconds of p99 per run
    return out


@contextlib.contextmanager
def process(name: str, argv: list[str], env: dict[str, str], workdir: Path) -> Iterator[Path]:
    """A background process in its own session, output in ``workdir/name.log``; stopped after."""
    log_path = workdir / f'{name}.log'
    with log_path.open('wb') as log:
        proc = subprocess.Popen(
            argv,
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield log_path
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # warm shutdown: beat writes its profile
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f'lateness: {what} not within {timeout:.0f}s')
        time.sleep(0.1)


def save_entries(app: Celery, first: float) -> None:
    dtstart = datetime.fromtimestamp(first, timezone.utc)
    if ARGS.schedule == 'rrule':
        spec, extra = rrule('SECONDLY', interval=ARGS.period, dtstart=dtstart), {}
    else:  # last run one period before the first burst: first due at it
        spec = schedule(timedelta(seconds=ARGS.period))
        extra = {'last_run_at': dtstart - timedelta(seconds=ARGS.period)}
    entries = [
        RedBeatSchedulerEntry(f'late-{i:05d}', 'latebench.record', spec, args=[i], app=app, **extra)
        for i in range(ARGS.n)
    ]
    if ARGS.impl == 'ours':
        redbeat.save_entries(entries)
    else:  # celery-redbeat has no bulk API
        for e in entries:
            e.save()


def listen(broker_url: str, until: float, expected: int) -> list[float]:
    """The server time of each message pushed to the queue, until ``until`` or ``expected``.

    The worker's ``BRPOP`` every second keeps the monitor stream going, so a
    read never waits long; a silent broker ends the watch (socket timeout).
    Each monitor line is read raw and only an ``LPUSH`` onto the queue is
    looked into: redis-py's ``next_command`` runs regular expressions over
    every line (the worker's commands too, and kilobytes per push), which
    took CPU from the processes measured, on the same two cores.
    """
    watcher = redis.Redis.from_url(broker_url, socket_timeout=5.0)
    stamps: list[float] = []
    push = f'] "LPUSH" "{QUEUE}" '.encode()
    tag = b'\\"delivery_tag\\"'  # as MONITOR quotes it: \"delivery_tag\"
    with watcher.monitor() as monitor:
        connection = monitor.connection
        while len(stamps) < expected and time.time() < until:
            try:
                line = connection.read_response()
            except redis.TimeoutError:
                break
            if isinstance(line, str):
                line = line.encode()
            if line and push in line:
                stamps += [float(line[: line.index(b' ')])] * line.count(tag)
    watcher.close()
    return stamps


def main() -> None:
    schedule = redis.Redis.from_url(ARGS.redis_url)
    broker = redis.Redis.from_url(ARGS.broker_url)
    schedule.flushdb()
    broker.flushdb()
    workdir = Path(tempfile.mkdtemp(prefix='redbeat-lateness-'))
    (workdir / 'latebench.py').write_text(APP_MODULE)
    app = Celery('saver', broker=ARGS.broker_url)
    app.conf.update(redbeat_redis_url=ARGS.redis_url, timezone='UTC')

    first = math.ceil((time.time() + ARGS.lead) / ARGS.period) * ARGS.period
    save_entries(app, first)
    scores = {float(s) for _, s in schedule.zrange('redbeat::schedule', 0, -1, withscores=True)}

    base = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    base.update(LATE_BROKER_URL=ARGS.broker_url, LATE_REDIS_URL=ARGS.redis_url)
    worker_env = dict(base, PYTHONPATH=str(workdir))
    beat_path = [str(workdir)] + ([str(OURS)] if ARGS.impl == 'ours' else [])
    # ours first, ahead of an installed redbeat; legacy: the virtualenv's
    beat_env = dict(base, PYTHONPATH=os.pathsep.join(beat_path[::-1]))
    worker_argv = [ARGS.worker_python, '-m', 'celery', '-A', 'latebench', 'worker',
                   '--pool', 'threads', '--concurrency', str(ARGS.concurrency),
                   '--without-gossip', '--without-mingle', '--without-heartbeat',
                   '--loglevel', 'warning']  # fmt: skip
    profile = ['-m', 'cProfile', '-o', ARGS.profile_beat] if ARGS.profile_beat else []
    beat_argv = [sys.executable, *profile, '-m', 'celery', '-A', 'latebench', 'beat',
                 '-S', 'redbeat.RedBeatScheduler', '-s', str(workdir / 'beat-state')]  # fmt: skip
    expected = ARGS.n * ARGS.runs
    out: dict[str, Any] = {
        'first_due': first,
        'period': ARGS.period,
        'runs': ARGS.runs,
        'concurrency': ARGS.concurrency,
        'schedule': ARGS.schedule,
        'saved_scores': sorted(scores)[:3],
        'worker': ' '.join(worker_argv[1:]),
    }
    try:
        with process('worker', worker_argv, worker_env, workdir) as worker_log:
            # Ready (and warm) once it has run one task.
            Celery(broker=ARGS.broker_url).send_task('latebench.record', args=[-1])
            wait_until(lambda: broker.llen(EXEC_KEY) >= 1, 60, 'worker ready')
            broker.delete(EXEC_KEY)
            with process('beat', beat_argv, beat_env, workdir) as beat_log:
                wait_until(lambda: schedule.exists(LOCK_KEY), 60, 'beat holding its lock')
                out['ready_before_due_s'] = first - time.time()
                sends = listen(ARGS.broker_url, first + ARGS.period * ARGS.runs + 2, expected)
                wait_until(lambda: broker.llen(EXEC_KEY) >= expected, 60, 'all executed')
                module = (broker.get(MODULE_KEY) or b'').decode()
            out['beat_log_tail'] = beat_log.read_text(errors='replace').splitlines()[-5:]
            out['worker_log_tail'] = worker_log.read_text(errors='replace').splitlines()[-5:]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    wanted = OURS / 'redbeat' if ARGS.impl == 'ours' else None
    if wanted is not None and not Path(module).resolve().is_relative_to(wanted):
        raise SystemExit(f'lateness: beat imported {module}, not {wanted}')
    if ARGS.impl == 'legacy' and 'site-packages' not in module:
        raise SystemExit(f'lateness: legacy beat imported {module}')
    executions = [float(v) for v in broker.lrange(EXEC_KEY, 0, -1)]
    out['send'] = series(sends, first)
    out['exec'] = series(executions, first)
    out['beat_module'] = module
    out['load'] = os.getloadavg()
    out['version'] = getattr(redbeat, '__version__', None) or 'celery-redbeat 2.x'
    print(json.dumps(out))


if __name__ == '__main__':
    main()
