"""The exceptions redbeat raises: one small tree rooted at :class:`RedBeatError`.

Every message names the setting or the Redis key concerned and says what is
wrong, so a log line alone is enough to find and fix the problem.
"""

from __future__ import annotations


class RedBeatError(Exception):
    """Base class of every error raised by redbeat."""


class ConfigurationError(RedBeatError, ValueError):
    """A setting is missing or has a value redbeat cannot use."""

    def __init__(self, setting: str, problem: str) -> None:
        self.setting = setting
        self.problem = problem
        super().__init__(f'{setting}: {problem}')


class DefinitionError(RedBeatError, ValueError):
    """An entry stored in Redis (or given in ``beat_schedule``) cannot be read.

    ``key`` is the Redis key (or the entry name for config entries) and
    ``reason`` says what is wrong with it.
    """

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(f'{key}: {reason}')


class EntryNotFound(RedBeatError, KeyError):
    """No entry is stored under this key."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(key)

    def __str__(self) -> str:
        return f'{self.key}: no such entry'


class LeadershipLost(RedBeatError):
    """This beat no longer holds the lock, so it must stop dispatching."""

    def __init__(self, lock_key: str) -> None:
        self.lock_key = lock_key
        super().__init__(f'{lock_key}: lock is held by another beat or expired')


class WriteConflict(RedBeatError):
    """An entry kept changing under a read-modify-write (enable, disable, edit).

    Each attempt read the entry and wrote only if it was still as read; another
    writer (a client, beat finishing a one-off) changed it every time.  Nothing
    was written by the last attempt.
    """

    def __init__(self, key: str, attempts: int) -> None:
        self.key = key
        self.attempts = attempts
        super().__init__(
            f'{key}: changed by another writer during each of {attempts} attempts to '
            'update it; nothing was written, try again'
        )
