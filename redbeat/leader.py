"""Leadership: which beat dispatches.  A redis-py :class:`~redis.lock.Lock`.

Every beat calls :meth:`Leadership.ensure` at each tick.  The leader renews
the lock once a third of its timeout has passed; a standby tries to take it.
Losing the lock is a state change, not an error: the beat logs it and goes
back to standby.  The token names the holder (``host:pid:random``) so a
standby can say who leads, and claims are fenced by it (``lua/claim.lua``).
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from typing import Callable, TypeVar

import redis
from redis.exceptions import LockError, NoScriptError
from redis.lock import Lock

from .metrics import Observer

T = TypeVar('T')

logger = logging.getLogger('redbeat.leader')


def _scripted(call: Callable[[], T]) -> T:
    """``call`` (a lock script), once more if the script is missing on the server.

    redis-py loads a missing script and runs it again, once.  Across a Sentinel
    failover the load can reach the old master and the run the new one, which
    does not have it (scripts are not replicated): the second try finds it.
    """
    try:
        return call()
    except NoScriptError:
        return call()


def make_token() -> str:
    return f'{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}'


class Leadership:
    """The lock of one beat.  With ``lock_key=None`` every beat leads."""

    def __init__(
        self,
        client: redis.Redis,
        lock_key: str | None,
        timeout: float,
        observer: Observer | None = None,
    ) -> None:
        self.client = client
        self.observer = observer or Observer()
        self.lock_key = lock_key
        self.timeout = timeout
        self.token = make_token()
        self.held = False
        #: How many times this beat acquired the lock: a new term, a new leader
        #: (at-least-once delivery re-sends the journal once per term).
        self.term = 0
        self._renewed_at = 0.0
        self._last_holder: str | None = None
        self._lock: Lock | None = None
        if lock_key:
            self._lock = client.lock(lock_key, timeout=timeout, thread_local=False)

    @property
    def fence(self) -> str | None:
        """The token claims must carry (None when locking is disabled)."""
        return self.token if self._lock else None

    @property
    def renew_every(self) -> float:
        return self.timeout / 3

    def ensure(self, clock: float | None = None) -> bool:
        """Renew or acquire the lock as needed; True if this beat leads now."""
        if self._lock is None:
            return True
        now = time.monotonic() if clock is None else clock
        if self.held:
            if now - self._renewed_at < self.renew_every:
                return True
            try:
                lock = self._lock
                _scripted(lambda: lock.extend(self.timeout, replace_ttl=True))
            except LockError:
                self.lost('the lock expired or was taken over before it could be renewed')
            else:
                self._renewed_at = now
                self.observer.renewed()
                return True
        if self._lock.acquire(blocking=False, token=self.token):
            self.held = True
            self.term += 1
            self._renewed_at = now
            self._last_holder = None
            self.observer.leadership(True, self.token)
            logger.info(
                'beat: Acquired lock %s (timeout %ss); this beat now dispatches.',
                self.lock_key,
                self.timeout,
            )
            return True
        self._report_holder()
        return False

    def lost(self, why: str) -> None:
        """Drop leadership (the caller noticed it no longer holds the lock)."""
        if self.held:
            logger.warning(
                'beat: Lost lock %s: %s. Stopped dispatching; now standby.', self.lock_key, why
            )
            self.observer.leadership(False, self.token, why)
        self.held = False

    def expire_if_stale(self, clock: float | None = None) -> None:
        """After Redis errors: once the lock could have expired, stop counting on it."""
        now = time.monotonic() if clock is None else clock
        if self.held and now - self._renewed_at >= self.timeout:
            self.lost(f'it could not be renewed for {self.timeout:g}s')

    def release(self) -> None:
        """Release the lock if held (on a clean stop), so a standby takes over at once."""
        if self._lock is None or not self.held:
            return
        self.held = False
        try:
            self._lock.release()
        except (LockError, redis.RedisError) as exc:
            logger.warning('beat: Could not release lock %s: %s', self.lock_key, exc)
        else:
            logger.info('beat: Released lock %s.', self.lock_key)

    def holder(self) -> tuple[str | None, float | None]:
        """Who holds the lock and for how many more seconds (None, None if free)."""
        assert self.lock_key is not None
        with self.client.pipeline(transaction=False) as pipe:
            pipe.get(self.lock_key)
            pipe.pttl(self.lock_key)
            token, ttl = pipe.execute()
        if token is None:
            return None, None
        return str(token), (ttl / 1000 if ttl and ttl > 0 else None)

    def _report_holder(self) -> None:
        token, ttl = self.holder()
        if token != self._last_holder:
            self._last_holder = token
            expires = f'expires in {ttl:.1f}s' if ttl is not None else 'no expiry'
            logger.info(
                'beat: Standby: lock %s is held by %s (%s); will keep trying.',
                self.lock_key,
                token,
                expires,
            )
