"""celery-redbeat 2.x's Python API, as thin shims over this package.

Code written for celery-redbeat 2.x imports these names from
``redbeat.schedulers`` (where they are re-exported) and keeps working:

* :func:`ensure_conf` and :func:`get_redis` give the app's settings and the
  very client beat uses, and set ``app.redbeat_conf`` / ``app.redbeat_redis``
  as 2.x did, so the documented "list every entry" recipe runs unchanged;
* :func:`acquire_distributed_beat_lock` takes the lock now, as 2.x's
  ``beat_init`` handler did (deprecated: beat takes it by itself);
* :class:`RetryingConnection` retries a client's calls on connection errors
  (deprecated: the client already retries, with redis-py's ``Retry``).

What 2.x did not document (its private helpers, the ``LUA_EXTEND_TO_SCRIPT``
constant) is not provided.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import redis
from celery import Celery
from celery.app import app_or_default
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, TimeoutError
from redis.retry import Retry

from .schedules import RULE_FIELDS

if TYPE_CHECKING:
    from .config import RedBeatConfig
    from .entry import StoreContext

logger = logging.getLogger('celery.beat')

#: The app attributes celery-redbeat 2.x set (its code, and its users', read them).
CONF_ATTRIBUTE = 'redbeat_conf'
REDIS_ATTRIBUTE = 'redbeat_redis'


def adopt_app_config(config: RedBeatConfig, app: Any) -> None:
    """Make ``config`` (built as ``RedBeatConfig(app)``) the settings of ``app``."""
    if app is not None and not isinstance(app, Celery):
        raise TypeError(
            f'RedBeatConfig: expected a Celery app or a Redis URL, got {type(app).__name__}; '
            'build it with RedBeatConfig.from_app(app)'
        )
    real = type(config).from_app(app_or_default(app))
    for name, value in vars(real).items():
        object.__setattr__(config, name, value)


_contexts: weakref.WeakKeyDictionary[Celery, StoreContext] = weakref.WeakKeyDictionary()


def context_for(app: Celery | None) -> StoreContext:
    """The store and settings of ``app`` (the current app when None), made once per app.

    celery-redbeat 2.x found the store through the app (``get_redis(app)``);
    entries without a store of their own and the 2.x functions here still do.
    """
    from .entry import StoreContext

    app = app_or_default(app)
    found = _contexts.get(app)
    if found is None:
        from .config import RedBeatConfig

        found = _contexts[app] = StoreContext(RedBeatConfig.from_app(app))
        expose_conf(app, found.config)  # app.redbeat_conf, as celery-redbeat 2.x set it
    return found


def ensure_conf(app: Celery | None = None) -> RedBeatConfig:
    """The settings of ``app`` (the current app if None), also as ``app.redbeat_conf``.

    As in celery-redbeat 2.x, the first call stores them on the app and later
    calls return that object.
    """
    app = app_or_default(app)
    config: RedBeatConfig | None = getattr(app, CONF_ATTRIBUTE, None)
    if config is None:
        config = context_for(app).config
        setattr(app, CONF_ATTRIBUTE, config)  # 2.x's documented attribute
    return config


def expose_conf(app: Celery, config: RedBeatConfig) -> None:
    """Set ``app.redbeat_conf`` unless set: beat's settings, as celery-redbeat 2.x beat did."""
    if getattr(app, CONF_ATTRIBUTE, None) is None:
        setattr(app, CONF_ATTRIBUTE, config)


def get_redis(app: Celery | None = None) -> redis.Redis:
    """The Redis client of the schedule of ``app``, also as ``app.redbeat_redis``.

    The same client beat and :class:`~redbeat.RedBeatSchedulerEntry` use
    (``decode_responses=True``, as in 2.x).  A client the caller put in
    ``app.redbeat_redis`` is returned as it is, as 2.x did; redbeat's own
    reads and writes do not go through it.
    """
    app = app_or_default(app)
    ensure_conf(app)
    client: redis.Redis | None = getattr(app, REDIS_ATTRIBUTE, None)
    if client is None:
        client = context_for(app).store.client
        setattr(app, REDIS_ATTRIBUTE, client)  # 2.x's documented attribute
    return client


def acquire_distributed_beat_lock(sender: Any = None, **kwargs: Any) -> bool:
    """Take the beat lock for ``sender.scheduler`` now; True if it is held.

    celery-redbeat 2.x connected this to ``beat_init`` and blocked until the
    lock was free.  Beat takes (and renews) the lock on every tick here, so
    this is only for code that called it directly: one attempt, no waiting.
    """
    warnings.warn(
        'acquire_distributed_beat_lock is deprecated: RedBeatScheduler takes the lock itself '
        'on each tick; call scheduler.leader.ensure() to try at once',
        DeprecationWarning,
        stacklevel=2,
    )
    scheduler = sender.scheduler
    if not scheduler.lock_key:
        return True
    held: bool = scheduler.leader.ensure()
    if held:
        logger.info('beat: Acquired lock')
    return held


class RetryingConnection:
    """A client whose calls are retried on connection errors and time-outs.

    celery-redbeat 2.x wrapped its client in this when
    ``redbeat_redis_options['retry_period']`` was set (seconds; -1: forever).
    Deprecated: redbeat's client already retries each command with
    redis-py's ``Retry``, and beat itself survives a Redis outage.
    Attributes that are not methods are passed through unchanged.
    """

    RETRY_MAX_WAIT = 30

    def __init__(self, retry_period: float, wrapped_connection: Any) -> None:
        warnings.warn(
            'RetryingConnection is deprecated: redbeat retries Redis commands itself '
            "(redis-py's Retry) and beat survives outages",
            DeprecationWarning,
            stacklevel=2,
        )
        self.wrapped_connection = wrapped_connection
        self.retry_period = retry_period
        self._backoff = ExponentialBackoff(cap=self.RETRY_MAX_WAIT, base=1)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.wrapped_connection, name)
        if not callable(attribute):
            return attribute

        def retrying(*args: Any, **kwargs: Any) -> Any:
            return self._call(attribute, args, kwargs)

        return retrying

    def _call(self, method: Any, args: Any, kwargs: Any) -> Any:
        deadline = None if self.retry_period < 0 else time.monotonic() + self.retry_period
        # redis-py's Retry counts attempts; the deadline bounds the total time as 2.x did.
        retries = 1 << 30
        policy = Retry(self._backoff, retries, supported_errors=(ConnectionError, TimeoutError))

        def give_up_or_wait(error: Exception) -> None:
            if deadline is not None and time.monotonic() >= deadline:
                raise error
            logger.warning('beat: Retrying Redis connection (%s)', error)

        return policy.call_with_retry(lambda: method(*args, **kwargs), give_up_or_wait)


# --- rolling back: what celery-redbeat 2.4.2 cannot read -------------------------

#: The typed values celery-redbeat 2.4.2's JSON decoder builds, with the fields
#: each accepts (anything else in one of them makes its constructor raise).
_LEGACY_TYPES: dict[str, frozenset[str]] = {
    'datetime': frozenset(
        ('year', 'month', 'day', 'hour', 'minute', 'second', 'microsecond', 'timezone')
    ),
    'interval': frozenset(('every', 'relative')),
    'crontab': frozenset(('minute', 'hour', 'day_of_week', 'day_of_month', 'month_of_year')),
    'weekday': frozenset(('wkday', 'n')),
    'rrule': frozenset((*RULE_FIELDS, 'dtstart', 'until', 'dtstart_tz', 'until_tz')),
}
#: The schedules among them (2.4.2 calls ``is_due`` on the entry's schedule).
_LEGACY_SCHEDULES = ('interval', 'crontab', 'rrule')


def unreadable_by_2x(definition: str | None) -> str | None:
    """Why celery-redbeat 2.4.2 could not run this stored definition, or None.

    Pure: follows what 2.4.2's decoder does with the JSON text.  It builds the
    typed values it knows wherever they appear and leaves any other
    ``__type__`` as a plain dict; a schedule left a dict (``solar``, or a type
    added later) raises ``AttributeError`` when 2.4.2 loads the entry (Celery
    sets ``.app`` on the schedule), which its beat does not catch: the beat
    process exits once the entry is within ``beat_max_loop_interval`` of due.
    A known type with a field it lacks (an ``interval`` without ``relative``)
    raises ``KeyError`` while loading, and 2.4.2 then removes the entry from
    the schedule as if its hash were gone.
    """
    if not definition:
        return None
    try:
        raw = json.loads(definition)
    except ValueError:
        return None  # unreadable here too: plain `check` reports it
    if not isinstance(raw, dict):
        return None
    if '__type__' in raw:
        return 'the old flat layout (schedule fields at the top level), which 2.x cannot load'
    for found in _typed_values(raw):
        kind = found['__type__']
        allowed = _LEGACY_TYPES.get(kind)
        if allowed is None:
            continue
        if kind == 'interval' and not {'every', 'relative'} <= found.keys():
            return (
                "an interval without 'every' and 'relative': 2.x drops the entry from the schedule"
            )
        extra = sorted(set(found) - allowed - {'__type__'})
        if extra:
            return (
                f'a {kind} with fields 2.x does not know ({", ".join(extra)}): 2.x cannot load it'
            )
    sched = raw.get('schedule')
    kind = sched.get('__type__') if isinstance(sched, dict) else None
    if kind not in _LEGACY_SCHEDULES:
        return (
            f'a {kind or "missing"} schedule, which 2.x cannot run: its beat exits when it is due'
        )
    return None


def _typed_values(value: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object carrying ``__type__`` in ``value``, innermost first."""
    if isinstance(value, dict):
        for item in value.values():
            yield from _typed_values(item)
        if '__type__' in value:
            yield value
    elif isinstance(value, list):
        for item in value:
            yield from _typed_values(item)
