"""Helpers shared by the end-to-end (``tests/e2e``) and HA (``tests/ha``) tests.

* :class:`Cluster` starts real ``celery worker`` / ``celery beat`` processes
  running :mod:`e2eapp` (next to this file) and always cleans them up;
* :class:`Records` reads what the worker executed (``executions.jsonl``);
* :func:`duplicates` and :func:`unexcused_gaps` judge a run: no occurrence
  twice, and no occurrence missing outside the outage windows;
* :class:`PasswordRedisServer` is a :class:`RedisServer` with ``requirepass``.

An occurrence is identified by its task id (redbeat derives it from the entry
key and the occurrence time) and, as a second net that does not depend on
those ids, by its send time: two sends of the same entry closer together than
half its interval are the same occurrence sent twice.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from tests.procs import CeleryProcess, start_beat, start_worker, wait_for
from tests.redis_server import HOST, RedisServer

E2E_DIR = Path(__file__).resolve().parent
APP = 'e2eapp'
TASK = 'e2eapp.record'
LOCK_KEY = 'redbeat::lock'
#: The header e2eapp stamps on what it sends: {pid, at} (e2eapp.SENDER_HEADER; not
#: imported, as importing e2eapp makes its Celery app the current one).
SENDER_HEADER = 'e2e_sender'
NOISE = re.compile(r'/MainProcess\] [\s^~]*$')


class PasswordRedisServer(RedisServer):
    """A private redis-server that wants a password (``requirepass``)."""

    def __init__(self, workdir: Path, *, password: str, **kwargs: Any) -> None:
        self.password = password
        extra = ['--requirepass', password, *kwargs.pop('extra_args', ())]
        super().__init__(workdir, extra_args=extra, **kwargs)

    def url_for(self, db: int) -> str:
        return f'redis://:{self.password}@{HOST}:{self.port}/{db}'

    def client(self, db: int = 0, **kwargs: Any) -> redis.Redis:
        return super().client(db, password=self.password, **kwargs)


def app_env(
    record_dir: Path,
    redis_url: str,
    broker_url: str,
    *,
    lock_timeout: float | None = None,
    static: Mapping[str, float] | None = None,
) -> dict[str, str]:
    """The environment :mod:`e2eapp` reads its configuration from."""
    env = {
        'E2E_RECORD_DIR': str(record_dir),
        'E2E_REDIS_URL': redis_url,
        'E2E_BROKER_URL': broker_url,
        'E2E_STATIC': json.dumps(dict(static or {})),
        'PYTHONPATH': str(E2E_DIR),
    }
    if lock_timeout is not None:
        env['E2E_LOCK_TIMEOUT'] = str(lock_timeout)
    return env


@dataclass(frozen=True)
class Execution:
    entry: str
    task_id: str
    received_at: float
    pid: int
    sender_pid: int | None
    sent_at: float | None
    redelivered: bool = False  # the broker handed this message out again

    @property
    def at(self) -> float:
        """When the occurrence was sent (when it ran, if the sender did not say)."""
        return self.sent_at if self.sent_at is not None else self.received_at


class Records:
    """What the worker ran, read back from ``executions.jsonl``."""

    def __init__(self, record_dir: Path) -> None:
        self.path = Path(record_dir) / 'executions.jsonl'

    def all(self) -> list[Execution]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        out = []
        for line in text.splitlines():
            with contextlib.suppress(ValueError):  # a line being written right now
                out.append(Execution(**json.loads(line)))
        return out

    def of(self, entry: str) -> list[Execution]:
        return sorted((e for e in self.all() if e.entry == entry), key=lambda e: e.at)

    def count(self, entry: str, since: float = 0.0) -> int:
        return sum(1 for e in self.of(entry) if e.at >= since)

    def by_entry(self) -> dict[str, list[Execution]]:
        grouped: dict[str, list[Execution]] = defaultdict(list)
        for e in self.all():
            grouped[e.entry].append(e)
        return {k: sorted(v, key=lambda e: e.at) for k, v in grouped.items()}

    def wait_count(self, entry: str, n: int, timeout: float, since: float = 0.0) -> int:
        return wait_for(
            lambda: (c := self.count(entry, since)) >= n and c,
            timeout,
            interval=0.1,
            message=f'{n} executions of {entry!r}',
        )


def duplicates(
    executions: Iterable[Execution],
    interval: float,
    *,
    redelivery_allowed: bool = False,
    broker_back_at: float | None = None,
) -> list[str]:
    """Every occurrence that ran more than once, described.

    Same task id twice (redbeat's per-occurrence id, or a redelivery), or two
    sends of one entry less than half an interval apart.  With
    ``redelivery_allowed``, a run of a message the broker handed out again
    (:func:`redelivered`) is not counted: beat sent it once.

    ``broker_back_at``: when a stopped broker came back.  A publish that
    kombu held in its retries (Celery's ``task_publish_retry_policy``) across
    that moment leaves late, within a second of it, and may land closer than
    half an interval to the next occurrence: two occurrences (two task ids),
    not one sent twice.  One such pair per entry, its first send within a
    second of ``broker_back_at``, is not counted.
    """
    found = []
    by_id: dict[str, list[Execution]] = defaultdict(list)
    by_entry: dict[str, list[Execution]] = defaultdict(list)
    again = {id(e) for e in redelivered(executions)} if redelivery_allowed else set()
    for e in executions:
        if id(e) in again:
            continue
        by_id[e.task_id].append(e)
        by_entry[e.entry].append(e)
    for task_id, runs in by_id.items():
        if len(runs) > 1:
            sends = len({r.sent_at for r in runs})
            how = f'beat sent it {sends} times' if sends > 1 else 'one send published twice'
            found.append(f'task id {task_id} ({runs[0].entry}) ran {len(runs)} times '
                         f'({how}): {runs}')  # fmt: skip
    for entry, runs in by_entry.items():
        runs.sort(key=lambda e: e.at)
        held = broker_back_at
        for a, b in zip(runs, runs[1:]):
            if b.at - a.at < interval / 2 and a.task_id != b.task_id:
                if held is not None and held <= a.sent_at <= held + 1.0:
                    held = None  # the one publish kombu held across the broker's return
                    continue
                found.append(
                    f'{entry}: sent {b.at - a.at:.3f}s apart by pids {a.sender_pid} and '
                    f'{b.sender_pid} (same occurrence twice): {a.task_id}, {b.task_id}'
                )
    return found


def redelivered(executions: Iterable[Execution]) -> list[Execution]:
    """Runs of a message the broker handed out again, not a second send by beat.

    The evidence is in the message: the same task id *and* the same send
    stamp (``e2e_sender``, set once per publish by the sending process) as an
    earlier run, and the broker's ``redelivered`` flag.  A second publish
    by beat would carry a new stamp; a publish retried by kombu, the same
    stamp without the flag.
    """
    first: dict[tuple[str, float | None], Execution] = {}
    again = []
    for e in sorted(executions, key=lambda e: e.received_at):
        if (e.task_id, e.sent_at) in first and e.redelivered:
            again.append(e)
        first.setdefault((e.task_id, e.sent_at), e)
    return again


@dataclass(frozen=True)
class Outage:
    """No beat could dispatch from ``start`` until ``end`` (first send after it)."""

    start: float
    end: float


def unexcused_gaps(
    executions: Iterable[Execution],
    interval: float,
    outages: Sequence[Outage],
    *,
    slack: float = 0.6,
) -> list[str]:
    """Gaps between consecutive sends of an entry that no outage explains.

    A gap longer than ``interval + slack`` means occurrences were not sent. It
    is allowed only when the first missing occurrence was due after an outage
    began (less ``slack``: an occurrence claimed right before a crash is lost
    with it) and the next send came at most ``slack`` after the outage ended
    (at takeover every overdue entry is sent at once).
    """
    found = []
    by_entry: dict[str, list[Execution]] = defaultdict(list)
    for e in executions:
        by_entry[e.entry].append(e)
    for entry, runs in by_entry.items():
        runs.sort(key=lambda e: e.at)
        for a, b in zip(runs, runs[1:]):
            if b.at - a.at <= interval + slack:
                continue
            missing_from = a.at + interval
            if any(missing_from >= o.start - slack and b.at <= o.end + slack for o in outages):
                continue
            found.append(
                f'{entry}: nothing sent for {b.at - a.at:.2f}s '
                f'({a.at:.2f} -> {b.at:.2f}), not explained by an outage'
            )
    return found


def lock_holder(client: redis.Redis, key: str = LOCK_KEY) -> tuple[str | None, int | None]:
    """The lock token (``host:pid:random``) and the pid in it; (None, None) if free."""
    token = client.get(key)
    if token is None:
        return None, None
    text = token.decode() if isinstance(token, bytes) else str(token)
    return text, int(text.split(':')[-2])


class Cluster:
    """Worker and beat processes of one test; everything is stopped at :meth:`close`."""

    def __init__(self, workdir: Path, env: Mapping[str, str]) -> None:
        self.workdir = Path(workdir)
        self.env = dict(env)
        self.logs = self.workdir / 'logs'
        self.records = Records(Path(env['E2E_RECORD_DIR']))
        self.procs: list[CeleryProcess] = []
        self._names: dict[str, int] = defaultdict(int)

    def _name(self, base: str) -> str:
        self._names[base] += 1
        return f'{base}-{self._names[base]}'

    def worker(self) -> CeleryProcess:
        proc = start_worker(APP, cwd=self.workdir, env=self.env, log_dir=self.logs,
                            name=self._name('worker'))  # fmt: skip
        self.procs.append(proc)
        return proc

    def beat(self, scheduler: str = 'redbeat.RedBeatScheduler') -> CeleryProcess:
        proc = start_beat(APP, cwd=self.workdir, env=self.env, log_dir=self.logs,
                          name=self._name('beat'), scheduler=scheduler)  # fmt: skip
        self.procs.append(proc)
        return proc

    @property
    def beats(self) -> list[CeleryProcess]:
        return [p for p in self.procs if p.name.startswith('beat')]

    def by_pid(self, pid: int) -> CeleryProcess:
        for proc in self.procs:
            if proc.pid == pid:
                return proc
        raise LookupError(f'no process of this test has pid {pid}')

    def wait_ready(self, worker: CeleryProcess, timeout: float = 30.0) -> None:
        wait_for(
            lambda: ' ready.' in worker.log() or not worker.alive,
            timeout,
            message=f'{worker.name} ready',
        )
        assert worker.alive, worker.log()

    def close(self) -> None:
        for proc in reversed(self.procs):  # beats first, then the worker
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGCONT)  # in case a test left it stopped
            proc.stop(timeout=10)

    def report(self, lines: int = 40) -> str:
        """Log tails of every process (printed on teardown: shown when a test fails)."""
        parts = []
        for proc in self.procs:
            # celery beat echoes a traceback on stderr one token a line: drop those
            kept = [x for x in proc.log().splitlines() if not NOISE.search(x)]
            tail = '\n'.join(kept[-lines:])
            parts.append(f'===== {proc.name} (pid {proc.pid}) {proc.log_path}\n{tail}')
        return '\n'.join(parts)


@contextlib.contextmanager
def cluster(workdir: Path, env: Mapping[str, str]) -> Iterator[Cluster]:
    c = Cluster(workdir, env)
    try:
        yield c
    finally:
        c.close()
        print(c.report())
