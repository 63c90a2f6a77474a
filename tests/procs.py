"""Real ``celery worker`` / ``celery beat`` subprocesses for end-to-end tests.

Each process runs in its own session (process group) with its output in a
log file, so a test can read what it did and always clean it up, even when a
worker left children behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar('T')

# On the children's PYTHONPATH so they run this checkout's redbeat even when
# it is not installed in the interpreter's environment.
REPO_ROOT = Path(__file__).resolve().parent.parent


def wait_for(
    predicate: Callable[[], T],
    timeout: float,
    *,
    interval: float = 0.1,
    message: str = 'condition',
) -> T:
    """Poll ``predicate`` until it returns something truthy; return that.

    Raises TimeoutError naming ``message`` after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f'{message} not met within {timeout}s')
        time.sleep(interval)


class CeleryProcess:
    """One celery sub-command running in the background."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        log_dir: Path,
        repo_on_path: bool = True,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = Path(log_dir) / f'{name}.log'
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        full_env = {**os.environ, 'PYTHONUNBUFFERED': '1', **env}
        inherited = env.get('PYTHONPATH', os.environ.get('PYTHONPATH'))
        # repo_on_path=False: an interpreter with another redbeat (celery-redbeat 2.x).
        repo = str(REPO_ROOT) if repo_on_path else None
        full_env['PYTHONPATH'] = os.pathsep.join(p for p in (str(cwd), repo, inherited) if p)
        with self.log_path.open('wb') as log:
            self.popen = subprocess.Popen(
                self.argv,
                cwd=cwd,
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors='replace')

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM (warm shutdown), then SIGKILL the whole group after ``timeout``."""
        if self.alive:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._kill_group()
        return self.popen.wait()

    def kill(self) -> None:
        """SIGKILL the process and its children: a crash."""
        self._kill_group()
        self.popen.wait()

    def _kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)

    def __enter__(self) -> CeleryProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def celery_argv(app_module: str, *args: str) -> list[str]:
    return [sys.executable, '-m', 'celery', '-A', app_module, *args]


def start_worker(
    app_module: str,
    *,
    cwd: Path,
    env: Mapping[str, str],
    log_dir: Path,
    name: str = 'worker',
    extra_args: Sequence[str] = (),
) -> CeleryProcess:
    # solo pool: one process, so SIGTERM/SIGKILL reach everything it runs.
    argv = celery_argv(
        app_module,
        'worker',
        '--loglevel=INFO',
        '--pool=solo',
        '--without-gossip',
        '--without-mingle',
        '--without-heartbeat',
        f'--hostname={name}@%h',
        *extra_args,
    )
    return CeleryProcess(name, argv, cwd=cwd, env=env, log_dir=log_dir)


def start_beat(
    app_module: str,
    *,
    cwd: Path,
    env: Mapping[str, str],
    log_dir: Path,
    name: str = 'beat',
    scheduler: str = 'redbeat.RedBeatScheduler',
    extra_args: Sequence[str] = (),
) -> CeleryProcess:
    argv = celery_argv(app_module, 'beat', '--loglevel=INFO', '-S', scheduler, *extra_args)
    return CeleryProcess(name, argv, cwd=cwd, env=env, log_dir=log_dir)
