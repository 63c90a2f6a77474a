"""Settings, read once from the Celery configuration into a typed object.

Each setting may be spelled ``redbeat_x`` (Celery 4+ style), ``REDBEAT_X``
(old upper-case style) or ``CELERY_REDBEAT_X`` (Django settings loaded with
``namespace='CELERY'``).  A bad value fails at start, naming the setting.
"""

from __future__ import annotations

import contextlib
import difflib
import math
import os
import re
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from urllib.parse import urlsplit

from celery import Celery
from redis.crc import key_slot

from .errors import ConfigurationError
from .keys import Keys

#: Default lock timeout, in seconds.  A standby beat takes over at most this
#: long after the leader dies without releasing the lock; the leader renews it
#: every third of it.  Ten seconds keeps failover fast while tolerating a GC
#: pause or a slow Redis answer of a few seconds.
DEFAULT_LOCK_TIMEOUT = 10.0

#: Default prefix on Redis Cluster: the hash tag ``{redbeat}`` puts every key
#: of the schedule in one slot, so multi-key scripts and pipelines work.
CLUSTER_KEY_PREFIX = '{redbeat}:'

#: Dispatch records kept per entry by default: none.  History is opt-in
#: (per entry, or ``redbeat_history_size``): each record costs about 150 bytes
#: in Redis and a write per dispatch, and by default an entry takes no more
#: memory than it does under celery-redbeat 2.x.
DEFAULT_HISTORY_SIZE = 0

#: Environment variables that override the Celery config, for beat and the CLI
#: alike (as Celery's own ``CELERY_BROKER_URL`` overrides ``broker_url``).
ENV_URL = 'REDBEAT_REDIS_URL'
ENV_PREFIX = 'REDBEAT_KEY_PREFIX'

#: Values of ``redbeat_key_expiry_check`` (celery-redbeat 2.4.3's setting):
#: what beat does at start when Redis may evict schedule keys.
KEY_EXPIRY_CHECKS = ('ignore', 'warn', 'error', 'raise')

#: Events kept in the ``<prefix>:events`` stream when ``redbeat_events`` is True
#: (``XADD MAXLEN ~``): a few MB of Redis at most, days of unusual events.
DEFAULT_EVENTS_MAXLEN = 10_000

#: ``redbeat_metrics`` value that records into prometheus_client's default
#: registry (multiprocess-safe with ``PROMETHEUS_MULTIPROC_DIR``) without serving it.
METRICS_REGISTRY = 'registry'
#: What a crash of the leader may cost (``redbeat_delivery``).  ``at-most-once``:
#: an occurrence is never sent twice, and a crash loses at most the group being
#: sent.  ``at-least-once``: claimed occurrences are journaled until sent, and a
#: next leader re-sends what a crash left, with the same task id.
Delivery = Literal['at-most-once', 'at-least-once']
DELIVERY_MODES: tuple[Delivery, ...] = ('at-most-once', 'at-least-once')
#: redbeat_redis_options keys passed on to the redis-py client.
CLIENT_OPTIONS = (
    'socket_timeout',
    'socket_connect_timeout',
    'socket_keepalive',
    'socket_keepalive_options',
    'health_check_interval',
    'username',
    'password',
    'client_name',
    'max_connections',
    'db',
    'credential_provider',
    'protocol',
)
#: Every key ``redbeat_redis_options`` may hold: the client's, Sentinel's and
#: Cluster's (read in client.py), and 2.x's ``retry_period`` (accepted, ignored).
REDIS_OPTIONS = frozenset(CLIENT_OPTIONS) | {
    'sentinels', 'service_name', 'master_name', 'sentinel_kwargs', 'sentinel_check_interval',
    'startup_nodes', 'retry_period',
}  # fmt: skip

REDIS_SCHEMES = ('redis', 'rediss', 'unix', 'redis-sentinel', 'sentinel', 'redis-cluster')
_UNSET = object()


def _lookup(conf: Any, name: str) -> Any:
    """The value of setting ``name`` in any of its spellings, or ``_UNSET``."""
    # conf.get, not "in": Celery loads config_from_object lazily, on the first get.
    for spelling in (name, name.upper(), 'CELERY_' + name.upper()):
        value = conf.get(spelling, _UNSET)
        if value is not _UNSET:
            return value
    return _UNSET


def _mask(url: str) -> str:
    """The URL with any password (also ``?password=``) replaced by ``**``."""
    parts = urlsplit(url)
    if parts.password is None and 'password' not in parts.query:
        return url
    if parts.password is not None:
        netloc = parts.netloc.replace(':' + parts.password + '@', ':**@', 1)
        parts = parts._replace(netloc=netloc)
    query = re.sub(r'((?:^|&)[^=&]*password=)[^&]*', r'\1**', parts.query)
    return parts._replace(query=query).geturl()


def masked_url(url: str) -> str:
    """``url`` fit for logs and banners: every password (also in ``;`` lists) masked."""
    return ';'.join(_mask(part) for part in url.split(';'))


@dataclass(frozen=True)
class RedBeatConfig:
    """Everything redbeat reads from the Celery configuration."""

    redis_url: str
    key_prefix: str = 'redbeat:'
    lock_key: str | None = None
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    redis_options: dict[str, Any] = field(default_factory=dict)
    use_ssl: bool | dict[str, Any] = False
    #: Celery's ``timezone``: the zone crontab fields are read in.
    timezone: str = 'UTC'
    #: Celery's ``beat_max_loop_interval``: the longest beat sleeps between checks.
    max_loop_interval: float = 300.0
    #: How many dispatch records each entry keeps (``redbeat_history_size``).
    history_size: int = DEFAULT_HISTORY_SIZE
    #: App-wide missed-run policy and catch-up window (``redbeat_missed_runs``,
    #: ``redbeat_catchup_window``); an entry's own policy overrides them.
    missed_runs: str = 'once'
    catchup_window: float | None = None
    #: ``redbeat_key_expiry_check``: one of :data:`KEY_EXPIRY_CHECKS`.
    key_expiry_check: str = 'error'
    #: Prometheus metrics (``redbeat_metrics``): None off, a port to serve
    #: ``/metrics`` on, or ``'registry'`` (prometheus_client's default registry).
    metrics: int | str | None = None
    #: Address the metrics port listens on (``redbeat_metrics_address``).
    metrics_address: str = '0.0.0.0'
    #: Also label occurrence counters by entry name (``redbeat_metrics_per_entry``).
    metrics_per_entry: bool = False
    #: Length the ``<prefix>:events`` stream is capped at; 0: no events (``redbeat_events``
    #: and ``redbeat_events_maxlen``).
    events_maxlen: int = 0
    #: ``redbeat_delivery``: see :data:`Delivery`.
    delivery: Delivery = 'at-most-once'

    def __post_init__(self) -> None:
        # celery-redbeat 2.x built its config as RedBeatConfig(app); here that
        # would silently make an app the URL.  Read the app's settings instead.
        given: Any = self.redis_url
        if not isinstance(given, str):
            from .compat import adopt_app_config  # the 2.x attributes live there

            adopt_app_config(self, given)

    # --- celery-redbeat 2.x attribute names ----------------------------------

    @property
    def schedule_key(self) -> str:
        return self.keys.schedule

    @property
    def statics_key(self) -> str:
        return self.keys.statics

    @property
    def redis_use_ssl(self) -> bool | dict[str, Any]:
        return self.use_ssl

    @property
    def redbeat_redis_options(self) -> dict[str, Any]:
        return self.redis_options

    def but(self, **changes: Any) -> RedBeatConfig:
        """A copy with ``changes`` (``dataclasses.replace`` that keeps :attr:`app`)."""
        changed = replace(self, **changes)
        object.__setattr__(changed, '_app', self.app)
        return changed

    @property
    def app(self) -> Celery | None:
        """The app these settings were read from (None if built from values)."""
        app: Celery | None = vars(self).get('_app')
        return app

    @property
    def schedule(self) -> dict[str, Any]:
        """The app's ``beat_schedule`` (as in celery-redbeat 2.x; read-only here)."""
        if self.app is None:
            return {}
        return dict(self.app.conf.beat_schedule or {})

    def is_key_in_conf(self, name: str) -> bool:
        """True if the app's config sets ``name`` in any spelling (celery-redbeat 2.x)."""
        return self.app is not None and _lookup(self.app.conf, name.lower()) is not _UNSET

    def either_or(self, name: str, default: Any = None) -> Any:
        """The app's value of setting ``name``, else ``default`` (celery-redbeat 2.x)."""
        value = _UNSET if self.app is None else _lookup(self.app.conf, name.lower())
        return default if value is _UNSET else value

    @property
    def keys(self) -> Keys:
        lock = self.lock_key if self.lock_key != Keys(self.key_prefix).default_lock else None
        return Keys(self.key_prefix, lock)

    @property
    def masked_url(self) -> str:
        return masked_url(self.redis_url)

    @classmethod
    def from_url(
        cls, url: str, prefix: str | None = None, *, timezone: str = 'UTC'
    ) -> RedBeatConfig:
        """Settings for the schedule at ``url`` under ``prefix``, checked as :meth:`from_app`
        checks an app's: the URL, the prefix, and on Redis Cluster that every key shares
        one slot.  Without ``prefix``, the one beat uses for that URL (``{redbeat}:`` on
        Cluster); the lock key is the prefix's default."""
        _check_url(url)
        if prefix is None:
            prefix = default_prefix(url)
        _check_prefix(prefix)
        keys = Keys(prefix)
        if urlsplit(url).scheme == 'redis-cluster':
            _check_cluster_keys(keys, keys.default_lock)
        return cls(url, key_prefix=prefix, lock_key=keys.default_lock, timezone=timezone)

    @classmethod
    def from_app(cls, app: Celery) -> RedBeatConfig:
        """Read and check the settings of ``app``; ConfigurationError if one is bad."""
        conf = app.conf
        prefix = os.environ.get(ENV_PREFIX) or _lookup(conf, 'redbeat_key_prefix')
        prefix_given = prefix is not _UNSET and prefix is not None
        prefix = prefix if prefix_given else 'redbeat:'
        _check_prefix(prefix)
        keys = Keys(prefix)

        url = os.environ.get(ENV_URL) or _lookup(conf, 'redbeat_redis_url')
        if (url is _UNSET or url is None) and conf.get('CELERY_REDIS_SCHEDULER_URL'):
            # Coming from redisbeat: its URL is not ours to read, but falling back to
            # the broker would quietly keep the schedule somewhere else.
            raise ConfigurationError(
                'redbeat_redis_url',
                "is not set, and redisbeat's CELERY_REDIS_SCHEDULER_URL is, which redbeat "
                'does not read: set redbeat_redis_url to the Redis the schedule should be in',
            )
        if url is _UNSET or url is None:
            broker = conf.broker_url or ''
            if not isinstance(broker, str) or urlsplit(broker).scheme not in REDIS_SCHEMES:
                raise ConfigurationError(
                    'redbeat_redis_url',
                    'is not set and the broker URL is not a Redis URL; '
                    "set it, e.g. redbeat_redis_url = 'redis://localhost:6379/1'",
                )
            url = broker
        _check_url(url, ENV_URL if url == os.environ.get(ENV_URL) else 'redbeat_redis_url')
        cluster = urlsplit(url).scheme == 'redis-cluster'
        if not prefix_given:
            prefix = default_prefix(url)
            keys = Keys(prefix)

        lock_key = _lookup(conf, 'redbeat_lock_key')
        if lock_key is _UNSET:
            lock_key = keys.default_lock
        elif lock_key is not None and (not isinstance(lock_key, str) or not lock_key):
            raise ConfigurationError(
                'redbeat_lock_key', f'must be a key name or None, got {lock_key!r}'
            )
        elif lock_key is not None and not lock_key.startswith(prefix):
            # As celery-redbeat 2.x: 'beat-lock' is 'redbeat:beat-lock', so old and
            # new beats of a rolling upgrade contend for one lock.
            lock_key = prefix + lock_key

        if cluster:
            _check_cluster_keys(keys, lock_key)

        timeout = _lookup(conf, 'redbeat_lock_timeout')
        timeout = DEFAULT_LOCK_TIMEOUT if timeout is _UNSET or timeout is None else timeout
        if isinstance(timeout, str):  # celery-redbeat 2.x accepted '30' (from env files)
            with contextlib.suppress(ValueError):  # if not a number: reported below
                timeout = float(timeout)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ConfigurationError(
                'redbeat_lock_timeout', f'must be a number of seconds > 0, got {timeout!r}'
            )
        if math.isinf(timeout) or math.isnan(timeout):
            raise ConfigurationError('redbeat_lock_timeout', f'must be finite, got {timeout!r}')

        options = _lookup(conf, 'redbeat_redis_options')
        given = options is not _UNSET and options is not None
        if not given:
            options = conf.broker_transport_options or {} if url == conf.broker_url else {}
        if not isinstance(options, dict):
            raise ConfigurationError('redbeat_redis_options', f'must be a dict, got {options!r}')
        if given:  # the broker's transport options hold kombu's own keys too: not checked
            _check_redis_options(options)

        use_ssl = _lookup(conf, 'redbeat_redis_use_ssl')
        if use_ssl is _UNSET or use_ssl is None:
            use_ssl = conf.broker_use_ssl or False if url == conf.broker_url else False
        if not isinstance(use_ssl, (bool, dict)):
            raise ConfigurationError(
                'redbeat_redis_use_ssl',
                f'must be True/False or a dict of ssl options, got {use_ssl!r}',
            )

        max_interval = conf.beat_max_loop_interval or 300
        history = _lookup(conf, 'redbeat_history_size')
        history = DEFAULT_HISTORY_SIZE if history is _UNSET or history is None else history
        if isinstance(history, bool) or not isinstance(history, int) or history < 0:
            raise ConfigurationError(
                'redbeat_history_size', f'must be a whole number >= 0, got {history!r}'
            )
        missed = _lookup(conf, 'redbeat_missed_runs')
        missed = 'once' if missed is _UNSET or missed is None else missed
        if missed not in ('once', 'skip', 'all'):
            raise ConfigurationError(
                'redbeat_missed_runs', f"must be 'once', 'skip' or 'all', got {missed!r}"
            )
        window = _lookup(conf, 'redbeat_catchup_window')
        window = None if window is _UNSET else window
        if window is not None and (
            isinstance(window, bool) or not isinstance(window, (int, float)) or window < 0
        ):
            raise ConfigurationError(
                'redbeat_catchup_window',
                f'must be a number of seconds >= 0 or None, got {window!r}',
            )
        check = _lookup(conf, 'redbeat_key_expiry_check')
        check = 'error' if check is _UNSET or check is None else check
        if not isinstance(check, str) or check.lower() not in KEY_EXPIRY_CHECKS:
            raise ConfigurationError(
                'redbeat_key_expiry_check',
                f'must be one of {", ".join(map(repr, KEY_EXPIRY_CHECKS))}, got {check!r}',
            )
        delivery = _lookup(conf, 'redbeat_delivery')
        delivery = 'at-most-once' if delivery is _UNSET or delivery is None else delivery
        if delivery not in DELIVERY_MODES:
            raise ConfigurationError(
                'redbeat_delivery', f"must be 'at-most-once' or 'at-least-once', got {delivery!r}"
            )
        config = cls(
            **_observability(conf),
            redis_url=url,
            key_prefix=prefix,
            lock_key=lock_key,
            lock_timeout=float(timeout),
            redis_options=dict(options),
            use_ssl=use_ssl,
            timezone=str(conf.timezone or 'UTC'),
            max_loop_interval=float(max_interval),
            history_size=history,
            missed_runs=missed,
            catchup_window=None if window is None else float(window),
            key_expiry_check=check.lower(),
            # Spelled out, not the value read: every mypy narrows this to the Literal.
            delivery='at-least-once' if delivery == 'at-least-once' else 'at-most-once',
        )
        object.__setattr__(config, '_app', app)  # for the 2.x attributes (app, schedule)
        return config


def _setting(conf: Any, name: str, default: Any) -> Any:
    value = _lookup(conf, name)
    return default if value is _UNSET or value is None else value


def _observability(conf: Any) -> dict[str, Any]:
    """The metrics and events settings (see docs/observability.rst)."""
    metrics = _setting(conf, 'redbeat_metrics', None)
    if metrics is False:
        metrics = None
    port_ok = isinstance(metrics, int) and not isinstance(metrics, bool) and 0 < metrics < 65536
    if metrics is not None and not port_ok and metrics != METRICS_REGISTRY:
        raise ConfigurationError(
            'redbeat_metrics',
            f'must be None (off), a port number (1-65535) to serve /metrics on, or '
            f"{METRICS_REGISTRY!r} (prometheus_client's default registry), got {metrics!r}",
        )
    address = _setting(conf, 'redbeat_metrics_address', '0.0.0.0')
    if not isinstance(address, str) or not address:
        raise ConfigurationError(
            'redbeat_metrics_address', f'must be an address to listen on, got {address!r}'
        )
    per_entry = _setting(conf, 'redbeat_metrics_per_entry', False)
    if not isinstance(per_entry, bool):
        raise ConfigurationError(
            'redbeat_metrics_per_entry', f'must be True or False, got {per_entry!r}'
        )
    events = _setting(conf, 'redbeat_events', False)
    if not isinstance(events, bool):
        raise ConfigurationError('redbeat_events', f'must be True or False, got {events!r}')
    maxlen = _setting(conf, 'redbeat_events_maxlen', DEFAULT_EVENTS_MAXLEN)
    if isinstance(maxlen, bool) or not isinstance(maxlen, int) or maxlen < 1:
        raise ConfigurationError(
            'redbeat_events_maxlen', f'must be a whole number >= 1, got {maxlen!r}'
        )
    return {
        'metrics': metrics,
        'metrics_address': address,
        'metrics_per_entry': per_entry,
        'events_maxlen': maxlen if events else 0,
    }


#: Keys celery-redbeat 2.x read that say something redbeat says another way.
_REPLACED_OPTIONS = {
    'cluster': "celery-redbeat 2.x's switch; here write the URL as redis-cluster://host:port",
}


def _check_redis_options(options: dict[str, Any]) -> None:
    """A key redbeat would not read is a typo (or a kombu option): say so rather than ignore it."""
    unknown = sorted(str(key) for key in options if key not in REDIS_OPTIONS)
    if not unknown:
        return
    hints = []
    for key in unknown:
        close = difflib.get_close_matches(key, sorted(REDIS_OPTIONS), n=1)
        if key in _REPLACED_OPTIONS:
            hints.append(f'{key!r} ({_REPLACED_OPTIONS[key]})')
        else:
            hints.append(f'{key!r}' + (f' (did you mean {close[0]!r}?)' if close else ''))
    raise ConfigurationError(
        'redbeat_redis_options',
        f'unknown {"key" if len(unknown) == 1 else "keys"} {", ".join(hints)}; '
        f'known: {", ".join(sorted(REDIS_OPTIONS))}',
    )


def default_prefix(url: str) -> str:
    """The key prefix when none is set: hash-tagged on Redis Cluster (one slot), else plain."""
    return CLUSTER_KEY_PREFIX if urlsplit(url).scheme == 'redis-cluster' else 'redbeat:'


def _check_url(url: Any, setting: str = 'redbeat_redis_url') -> None:
    if not isinstance(url, str) or not url:
        raise ConfigurationError(setting, f'must be a URL string, got {url!r}')
    scheme = urlsplit(url.split(';')[0]).scheme
    if scheme not in REDIS_SCHEMES:
        raise ConfigurationError(
            setting,
            f'{masked_url(url)!r} is not a Redis URL (scheme {scheme!r}; '
            f'expected one of {", ".join(REDIS_SCHEMES)})',
        )


def _check_prefix(prefix: Any) -> None:
    if not isinstance(prefix, str) or not prefix:
        raise ConfigurationError(
            'redbeat_key_prefix', f'must be a non-empty string, got {prefix!r}'
        )


def _check_cluster_keys(keys: Keys, lock_key: str | None) -> None:
    """On Redis Cluster every key of the schedule (and the lock) must share one slot."""
    if keys.hash_tag is None:
        raise ConfigurationError(
            'redbeat_key_prefix',
            f'{keys.prefix!r} has no hash tag, so on Redis Cluster the keys of one schedule '
            "would spread over slots (CROSSSLOT errors); use one such as '{redbeat}:' "
            '(the default on Cluster)',
        )
    if lock_key is not None and key_slot(lock_key.encode()) != key_slot(keys.schedule.encode()):
        raise ConfigurationError(
            'redbeat_lock_key',
            f'{lock_key!r} is not in the hash slot of the schedule {keys.schedule!r}; on Redis '
            f'Cluster give it the same hash tag, e.g. {keys.default_lock!r}',
        )
