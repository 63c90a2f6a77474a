"""Run redbeat for real and show it: `bash scripts/demo.sh`.

Starts a private redis-server on a free loopback port, a celery worker and
`celery beat -S redbeat.RedBeatScheduler`, adds an entry from Python while beat
runs, waits until the worker ran it twice, deletes it and shows that it stops.
Exits non-zero with the logs' tails if anything does not happen in time.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import time
from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parent
sys.path[:0] = [str(DEMO_DIR), str(DEMO_DIR.parent)]

from tests.procs import CeleryProcess, start_beat, start_worker, wait_for  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402

TASK_DONE = re.compile(r'Task demoapp\.hello\[[^\]]+\] succeeded')
INTERVAL = 2
TIMEOUT = 30


def runs(worker: CeleryProcess) -> int:
    return len(TASK_DONE.findall(worker.log()))


def tail(proc: CeleryProcess, lines: int = 15) -> str:
    return '\n'.join(f'    {line}' for line in proc.log().splitlines()[-lines:])


def demo(workdir: Path) -> int:
    with RedisServer(workdir / 'redis') as server:
        print(f'redis-server {server.binary} on {server.url}')
        os.environ['DEMO_REDIS_URL'] = server.url.rsplit('/', 1)[0]
        env = {'DEMO_REDIS_URL': os.environ['DEMO_REDIS_URL']}
        logs = workdir / 'logs'
        worker = start_worker('demoapp', cwd=DEMO_DIR, env=env, log_dir=logs)
        with worker:
            beat = start_beat('demoapp', cwd=DEMO_DIR, env=env, log_dir=logs)
            with beat:
                print(f'celery worker pid {worker.pid}, celery beat pid {beat.pid}')
                status = run_entry(worker, beat)
                print('stopping beat, worker and redis-server')
    return status


def run_entry(worker: CeleryProcess, beat: CeleryProcess) -> int:
    from celery.schedules import schedule
    from demoapp import app

    from redbeat import RedBeatSchedulerEntry

    entry = RedBeatSchedulerEntry(
        'demo-every-2s', 'demoapp.hello', schedule(INTERVAL), args=['world'], app=app
    )
    entry.save()
    print(f'saved entry {entry.name!r}: demoapp.hello("world") every {INTERVAL}s')
    with contextlib.suppress(TimeoutError):
        wait_for(
            lambda: runs(worker) >= 2 or not (worker.alive and beat.alive),
            timeout=TIMEOUT,
            interval=0.2,
        )
    seen = runs(worker)
    if seen < 2:
        print(f'FAILED: the worker ran demoapp.hello {seen} time(s) in {TIMEOUT}s, expected 2')
        print(f'  worker log:\n{tail(worker)}\n  beat log:\n{tail(beat)}')
        return 1
    for line in worker.log().splitlines():
        if TASK_DONE.search(line):
            print(f'  worker: {line.strip()}')

    entry.delete()
    stopped_at = runs(worker)
    print(f'deleted entry {entry.name!r} after {stopped_at} runs; watching for {3 * INTERVAL}s')
    time.sleep(3 * INTERVAL)
    after = runs(worker) - stopped_at
    # One message may already have been on its way when the entry was deleted.
    if after > 1:
        print(f'FAILED: {after} more runs after the entry was deleted')
        return 1
    print(f'{after} run(s) after delete: the entry is gone and beat stopped sending it')
    return 0


def main() -> int:
    with tempfile.TemporaryDirectory(prefix='redbeat-demo-') as tmp:
        try:
            status = demo(Path(tmp))
        except Exception as exc:
            print(f'FAILED: {type(exc).__name__}: {exc}')
            status = 1
    print('demo OK' if status == 0 else 'demo FAILED')
    return status


if __name__ == '__main__':
    sys.exit(main())
