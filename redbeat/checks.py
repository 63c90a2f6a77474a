"""Start-up checks of the Redis server: can it evict the schedule's keys?

With ``maxmemory`` set and an ``allkeys-*`` eviction policy, Redis may
delete schedule entries under memory pressure, and their tasks silently
stop.  ``redbeat_key_expiry_check`` (celery-redbeat 2.4.3's setting) says
what beat does about it at start: ``ignore``, ``warn`` (a WARNING),
``error`` (an ERROR, the default) or ``raise`` (beat does not start; also
when the settings cannot be read).
"""

from __future__ import annotations

import logging
from typing import Any

from .errors import RedBeatError
from .store import memory_settings

logger = logging.getLogger('celery.beat')

DEFAULT_KEY_EXPIRY_CHECK = 'error'
KEY_EXPIRY_CHECK_MODES = ('ignore', 'warn', 'error', 'raise')


class RedBeatKeyExpiryError(RedBeatError, RuntimeError):
    """Redis is configured so that it may evict the schedule's keys."""


def evictable(policy: str | None, maxmemory: str | None) -> str | None:
    """Why these settings let Redis evict schedule keys, or None if they do not.

    ``volatile-*`` policies only evict keys with a time to live, and the lock
    is the only redbeat key that has one; without ``maxmemory`` nothing is
    evicted at all.
    """
    try:
        limit = int(maxmemory or 0)
    except ValueError:
        return None
    policy = (policy or '').lower()
    if not limit or not policy.startswith('allkeys'):
        return None
    return (
        f'Redis maxmemory is {limit} with maxmemory-policy {policy}: Redis may evict schedule '
        'entries under memory pressure, silently stopping their tasks. Use noeviction or a '
        'volatile-* policy, or give redbeat a Redis of its own.'
    )


def report(policy: str | None, maxmemory: str | None, mode: str) -> list[str]:
    """Log (or raise) what ``mode`` asks for about these settings; the findings.

    ``policy`` None means the server would not tell (CONFIG refused).
    """
    if mode == 'ignore':
        return []
    if policy is None:
        message = 'could not read the Redis maxmemory policy (CONFIG GET refused)'
        if mode == 'raise':
            raise RedBeatKeyExpiryError(f'redbeat_key_expiry_check: {message}')
        logger.warning('beat: %s', message)
        return []
    finding = evictable(policy, maxmemory)
    if finding is None:
        return []
    if mode == 'raise':
        raise RedBeatKeyExpiryError(f'redbeat_key_expiry_check: {finding}')
    logger.log(logging.WARNING if mode == 'warn' else logging.ERROR, 'beat: %s', finding)
    return [finding]


def check_key_expiry(client: Any, mode: str = DEFAULT_KEY_EXPIRY_CHECK) -> list[str]:
    """Report Redis settings that let the schedule's keys disappear (celery-redbeat 2.4.3).

    ``client`` is a redis-py client (a cluster client asks every node);
    ``mode`` is one of ``ignore``, ``warn``, ``error``, ``raise``.  Returns the findings
    (empty when none, or with ``ignore``); raises
    :class:`RedBeatKeyExpiryError` with ``raise``.
    """
    if mode not in KEY_EXPIRY_CHECK_MODES:
        raise ValueError(f'mode must be one of {", ".join(KEY_EXPIRY_CHECK_MODES)}, not {mode!r}')
    if mode == 'ignore':
        return []
    findings = []
    for policy, maxmemory in memory_settings(client):
        findings.extend(report(policy, maxmemory, mode))
    return findings
