"""Fixtures and helpers of the high-availability (fault injection) tests.

They reuse the end-to-end harness (:mod:`tests.e2e.harness`): real worker and
beat processes running ``e2eapp``, whose worker records every execution with
the pid of the beat that sent it and the send time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis

from tests.e2e.harness import LOCK_KEY, Records, lock_holder
from tests.procs import wait_for


@dataclass(frozen=True)
class Takeover:
    """One failover: when the leader was hurt, when another held the lock, first send."""

    hurt_at: float
    locked_at: float
    first_send_at: float
    old_pid: int
    new_pid: int

    @property
    def lock_after(self) -> float:
        return self.locked_at - self.hurt_at

    @property
    def send_after(self) -> float:
        return self.first_send_at - self.hurt_at


def wait_new_holder(
    conn: redis.Redis, old_token: str | None, timeout: float
) -> tuple[float, str, int]:
    """Poll the lock (every 20 ms) until a token other than ``old_token`` holds it."""

    def check() -> tuple[float, str, int] | None:
        token, pid = lock_holder(conn, LOCK_KEY)
        if token is not None and token != old_token and pid is not None:
            return time.time(), token, pid
        return None

    return wait_for(check, timeout, interval=0.02, message='another beat holds the lock')


def first_send_by(records: Records, pid: int, after: float, timeout: float) -> float:
    """When ``pid`` first sent something after ``after`` (as executed by the worker)."""

    def check() -> float | None:
        times = [e.at for e in records.all() if e.sender_pid == pid and e.at > after]
        return min(times) if times else None

    return wait_for(check, timeout, interval=0.05, message=f'a send by beat pid {pid}')


def summary(takeovers: list[Takeover]) -> str:
    rows = [
        f'  #{i + 1}: lock taken {t.lock_after:5.2f}s, first send {t.send_after:5.2f}s '
        f'after the leader (pid {t.old_pid}) was hurt; new leader pid {t.new_pid}'
        for i, t in enumerate(takeovers)
    ]
    if takeovers:
        locks = [t.lock_after for t in takeovers]
        sends = [t.send_after for t in takeovers]
        rows.append(
            f'  lock: min {min(locks):.2f}s max {max(locks):.2f}s '
            f'mean {sum(locks) / len(locks):.2f}s; first send: min {min(sends):.2f}s '
            f'max {max(sends):.2f}s mean {sum(sends) / len(sends):.2f}s'
        )
    return '\n'.join(rows)
