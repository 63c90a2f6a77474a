"""Building the Redis client from a :class:`~redbeat.config.RedBeatConfig`.

One function, :func:`redis_from_config`, reads the URL scheme and returns the
matching redis-py client:

``redis://``, ``rediss://``, ``unix://``
    one server (TLS for ``rediss://``, or ``redis://`` with
    ``redbeat_redis_use_ssl`` set), via :meth:`redis.Redis.from_url`;
``sentinel://`` and ``redis-sentinel://``
    the master of a Sentinel-managed service (``;``-separated sentinels, as
    Celery and kombu write them): :meth:`redis.sentinel.Sentinel.master_for`
    asks the sentinels again whenever a connection to the master fails or
    finds a replica, so beat follows a failover without a restart;
``redis-cluster://``
    :class:`redis.cluster.RedisCluster` from its startup nodes.  Every key of
    a schedule must share one slot (a hash-tagged prefix, ``{redbeat}:`` by
    default there, see :mod:`redbeat.config`).

The client decodes responses to ``str`` (everything redbeat stores is JSON)
and retries a failed command a few times with jittered exponential backoff,
using redis-py's own :class:`~redis.retry.Retry`.  Longer outages are handled
by the scheduler, which keeps running and tries again on its next tick.

Creating a client does no network I/O, except for Redis Cluster: redis-py
reads the cluster's slot map when the client is made (a cluster that no node
of answers raises :class:`redis.ConnectionError`, naming the masked URL;
:class:`~redbeat.entry.StoreContext` makes its client on first use, so beat starts
anyway and retries).

A server that refuses the credentials raises :class:`redis.AuthenticationError`
whose message names the settings that hold them; passwords never appear in a
message.
"""

from __future__ import annotations

import logging
import os
import ssl
import time
from collections.abc import Iterable
from typing import Any, Callable, cast
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.connection import AbstractConnection
from redis.exceptions import RedisClusterException
from redis.retry import Retry
from redis.sentinel import MasterNotFoundError, Sentinel, SentinelConnectionPool

from .config import CLIENT_OPTIONS, RedBeatConfig, masked_url
from .errors import ConfigurationError

#: TLS options redis-py takes (in redbeat_redis_use_ssl, or the URL query).
SSL_OPTIONS = frozenset(
    {
        'ssl_keyfile',
        'ssl_certfile',
        'ssl_cert_reqs',
        'ssl_ca_certs',
        'ssl_ca_data',
        'ssl_ca_path',
        'ssl_check_hostname',
        'ssl_password',
        'ssl_min_version',
        'ssl_ciphers',
        'ssl_include_verify_flags',
        'ssl_exclude_verify_flags',
        'ssl_validate_ocsp',
        'ssl_validate_ocsp_stapled',
        'ssl_ocsp_context',
        'ssl_ocsp_expected_cert',
    }
)
#: TLS options that name a file: checked at start, so a typo fails there.
_SSL_FILES = ('ssl_keyfile', 'ssl_certfile', 'ssl_ca_certs', 'ssl_ca_path')
_SSL_REQS = {'none': ssl.CERT_NONE, 'optional': ssl.CERT_OPTIONAL, 'required': ssl.CERT_REQUIRED}
_TRUE = ('1', 'true', 'yes', 'on')
DEFAULT_SENTINEL_PORT = 26379
DEFAULT_PORT = 6379
DEFAULT_SOCKET_TIMEOUT = 5.0
#: How often (seconds) a Sentinel client asks who the master is; see _FollowingPool.
DEFAULT_SENTINEL_CHECK_INTERVAL = 1.0

logger = logging.getLogger('redbeat.client')


def command_retry() -> Retry:
    """Retry policy for single commands: 3 retries, 50 ms doubling to 1 s, jittered."""
    return Retry(ExponentialWithJitterBackoff(cap=1.0, base=0.05), retries=3)


def cluster_unreachable(exc: BaseException) -> bool:
    """True for redis-py's "Redis Cluster cannot be connected": no node answered."""
    return isinstance(exc, RedisClusterException) and isinstance(
        exc.__cause__, (redis.ConnectionError, redis.TimeoutError)
    )


def needs_operator(exc: BaseException) -> bool:
    """True for a failure retrying cannot heal: Redis refused the credentials.

    Beat goes on retrying (the password may be fixed on the server), but logs
    these at ERROR: a WARNING repeated forever is what a wrong password looked
    like before, and alerting rarely watches warnings.
    """
    return isinstance(exc, redis.AuthenticationError)


def redis_from_config(config: RedBeatConfig) -> redis.Redis:
    """A client for the schedule's Redis, as the settings describe it.

    ConfigurationError (naming the setting) when the URL, the options or the
    TLS settings cannot work together.
    """
    scheme = urlsplit(config.redis_url.split(';')[0].strip()).scheme
    if scheme in ('sentinel', 'redis-sentinel'):
        return _sentinel_client(config)
    if scheme == 'redis-cluster':
        return _cluster_client(config)
    return _single_client(config, scheme)


# --- credentials -------------------------------------------------------------


def _explain_auth(hint: str) -> Callable[[AbstractConnection], None]:
    """A ``redis_connect_func`` that says which setting holds refused credentials.

    Redis's own words ("invalid username-password pair", or "HELLO must be
    called with the client already authenticated" when no password was given)
    do not say where to look; the raised error stays an AuthenticationError
    (a ConnectionError), so callers that survive Redis errors survive it too.
    """

    def connect(connection: AbstractConnection) -> None:
        # What redis-py runs without a redis_connect_func; no health-check
        # PING while connecting (it would reconnect, and recurse, on failure).
        setup = getattr(connection, 'on_connect_check_health', None)
        try:
            if setup is not None:
                setup(check_health=False)
            else:  # redis-py < 5.1
                connection.on_connect()  # type: ignore[no-untyped-call]
        except redis.AuthenticationError as exc:
            where = f'{getattr(connection, "host", "?")}:{getattr(connection, "port", "?")}'
            raise redis.AuthenticationError(
                f'Redis at {where} refused to authenticate ({exc}); {hint}'
            ) from None

    return connect


_REDIS_AUTH_HINT = (
    'check the username and password in redbeat_redis_url '
    "(redis://USER:PASSWORD@host) or redbeat_redis_options['username'/'password'] "
    "(or its 'credential_provider')"
)
_SENTINEL_AUTH_HINT = (
    "check the sentinels' password in redbeat_redis_options['sentinel_kwargs']['password'] "
    "(the password in redbeat_redis_url is the master's)"
)


def _check_credentials(kwargs: dict[str, Any], url_has_password: bool) -> None:
    if kwargs.get('credential_provider') is None:
        return
    if url_has_password or kwargs.get('password') or kwargs.get('username'):
        raise ConfigurationError(
            'redbeat_redis_options',
            "'credential_provider' supplies the username and password; remove them from "
            "redbeat_redis_url and redbeat_redis_options['username'/'password']",
        )


# --- options shared by every topology -------------------------------------------


def _client_kwargs(config: RedBeatConfig) -> dict[str, Any]:
    options = config.redis_options
    kwargs = {k: options[k] for k in CLIENT_OPTIONS if k in options}
    kwargs.setdefault('socket_timeout', DEFAULT_SOCKET_TIMEOUT)
    kwargs.setdefault('socket_connect_timeout', DEFAULT_SOCKET_TIMEOUT)
    kwargs.setdefault('health_check_interval', 30)
    kwargs['decode_responses'] = True
    kwargs['retry'] = command_retry()
    kwargs['retry_on_error'] = [redis.ConnectionError, redis.TimeoutError]
    return kwargs


def _ssl_value(key: str, value: Any) -> Any:
    """One TLS option as redis-py wants it; ConfigurationError if it cannot be."""
    if key == 'ssl_cert_reqs' and isinstance(value, str):
        name = value.lower().removeprefix('ssl.').removeprefix('cert_')
        if name not in _SSL_REQS:
            raise ConfigurationError(
                'redbeat_redis_use_ssl',
                f'ssl_cert_reqs {value!r} is not one of none, optional, required',
            )
        return _SSL_REQS[name]
    if key == 'ssl_check_hostname' and isinstance(value, str):
        return value.lower() in _TRUE
    if key in _SSL_FILES and isinstance(value, str) and not os.path.exists(value):
        raise ConfigurationError('redbeat_redis_use_ssl', f'{key}: no such file {value!r}')
    return value


def _ssl_kwargs(options: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """TLS options for redis-py.  Celery's spellings without ``ssl_`` are accepted."""
    out: dict[str, Any] = {}
    for key, value in options:
        name = key if key.startswith('ssl_') else 'ssl_' + key
        if name not in SSL_OPTIONS:
            known = ', '.join(sorted(SSL_OPTIONS))
            raise ConfigurationError(
                'redbeat_redis_use_ssl', f'unknown TLS option {key!r}; known: {known}'
            )
        out[name] = _ssl_value(name, value)
    return out


def _split_query(url: str) -> tuple[str, dict[str, str]]:
    """``url`` without its ``ssl_*`` query options, and those options."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    tls = {k: v for k, v in query if k.startswith('ssl_')}
    rest = urlencode([(k, v) for k, v in query if not k.startswith('ssl_')])
    return parts._replace(query=rest).geturl(), tls


def _tls(config: RedBeatConfig, url_tls: dict[str, str]) -> dict[str, Any] | None:
    """TLS options from the URL query, then ``redbeat_redis_use_ssl`` (which wins).

    None when TLS is off (no ``rediss://``, use_ssl False and no ssl_* in the URL).
    """
    if config.use_ssl is False and not url_tls:
        return None
    out = _ssl_kwargs(url_tls.items())
    if isinstance(config.use_ssl, dict):
        out.update(_ssl_kwargs(config.use_ssl.items()))
    return out


# --- one server --------------------------------------------------------------


def _single_client(config: RedBeatConfig, scheme: str) -> redis.Redis:
    kwargs = _client_kwargs(config)
    url, url_tls = _split_query(config.redis_url)
    tls = _tls(config, url_tls)
    if tls is not None:
        if scheme == 'unix':
            raise ConfigurationError(
                'redbeat_redis_use_ssl', 'TLS does not apply to a unix:// socket URL'
            )
        if scheme == 'redis':  # TLS asked for by redbeat_redis_use_ssl
            url = 'rediss' + url[len('redis') :]
        kwargs.update(tls)
    _check_credentials(kwargs, urlsplit(url).password is not None)
    kwargs['redis_connect_func'] = _explain_auth(_REDIS_AUTH_HINT)
    return redis.Redis.from_url(url, **kwargs)


# --- Sentinel ------------------------------------------------------------------


def _host_port(text: str, default_port: int, setting: str) -> tuple[str, int]:
    """``host``, ``host:port`` or ``[v6]:port`` as a (host, port) pair."""
    text = text.strip()
    if text.startswith('['):
        host, _, rest = text[1:].partition(']')
        port_text = rest.removeprefix(':')
    elif text.count(':') == 1:
        host, _, port_text = text.partition(':')
    else:
        host, port_text = text, ''
    try:
        port = int(port_text) if port_text else default_port
    except ValueError:
        raise ConfigurationError(setting, f'{text!r} has an invalid port') from None
    if not host:
        raise ConfigurationError(setting, f'{text!r} has no host')
    return host, port


def _nodes_option(value: Any, default_port: int, name: str) -> list[tuple[str, int]]:
    """``sentinels``/``startup_nodes`` given as (host, port), "host:port" or dicts."""
    setting = f"redbeat_redis_options['{name}']"
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ConfigurationError(setting, f'must be a list of (host, port), got {value!r}')
    nodes = []
    for node in value:
        if isinstance(node, str):
            nodes.append(_host_port(node, default_port, setting))
        elif isinstance(node, dict) and 'host' in node:
            nodes.append((str(node['host']), int(node.get('port', default_port))))
        elif isinstance(node, (tuple, list)) and len(node) == 2:
            nodes.append((str(node[0]), int(node[1])))
        else:
            raise ConfigurationError(setting, f'{node!r} is not (host, port) nor "host:port"')
    return nodes


class _UrlParts:
    """What a multi-host URL holds: hosts, credentials, db, query."""

    def __init__(self, url: str, default_port: int, setting: str) -> None:
        self.nodes: list[tuple[str, int]] = []
        self.username: str | None = None
        self.password: str | None = None
        self.db: int | None = None
        self.query: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in url.split(';'))):
            parsed = urlsplit(part)
            userinfo, _, hosts = parsed.netloc.rpartition('@')
            user, has_password, password = userinfo.partition(':')
            if user and self.username is None:
                self.username = unquote(user)
            if has_password and self.password is None:
                self.password = unquote(password)
            for host in filter(None, hosts.split(',')):
                self.nodes.append(_host_port(host, default_port, setting))
            path = parsed.path.strip('/')
            if path:
                if not path.isdigit():
                    raise ConfigurationError(
                        setting, f'{masked_url(part)!r}: the path must be a db number'
                    )
                self.db = int(path)
            self.query.update(parse_qsl(parsed.query))


class _Sentinel(Sentinel):
    """Sentinel whose "no master found" says when the sentinels refused the password."""

    def discover_master(self, service_name: str) -> tuple[str, int]:
        try:
            address: tuple[str, int] = super().discover_master(service_name)  # type: ignore[no-untyped-call]
        except MasterNotFoundError as exc:
            if 'AuthenticationError' not in str(exc):
                raise
            raise MasterNotFoundError(
                f'No master found for {service_name!r}: the sentinels refused to '
                f'authenticate; {_SENTINEL_AUTH_HINT}'
            ) from None
        return address


class _FollowingPool(SentinelConnectionPool):
    """A master pool that asks the sentinels who the master is every ``check_interval`` s.

    redis-py's own pool asks only when a connection fails or meets a replica.
    After a failover that leaves the old master up (``SENTINEL FAILOVER``, a
    partition), the old master keeps accepting writes until the sentinels
    demote it, up to ~10 s later, and what beat writes there meanwhile is then
    discarded: occurrences claimed there would be claimed again on the new
    master.  Asking every second moves beat to the new master within a second.
    """

    def __init__(self, service_name: str, sentinel_manager: Sentinel, **kwargs: Any) -> None:
        self.check_interval = float(kwargs.pop('check_interval', DEFAULT_SENTINEL_CHECK_INTERVAL))
        self._checked_at = time.monotonic()
        self._unreachable = False
        super().__init__(service_name, sentinel_manager, **kwargs)  # type: ignore[no-untyped-call]

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        now = time.monotonic()
        if self.check_interval > 0 and now - self._checked_at >= self.check_interval:
            self._checked_at = now
            try:
                # Disconnects the idle connections when the master moved.
                self.get_master_address()  # type: ignore[no-untyped-call]
            except redis.ConnectionError as exc:
                # The master may still be fine: go on with it; a failing
                # connection asks the sentinels again by itself.
                if not self._unreachable:
                    logger.warning('beat: Cannot ask the sentinels who the master is: %s', exc)
                self._unreachable = True
            else:
                self._unreachable = False
        return super().get_connection(*args, **kwargs)


def _sentinel_client(config: RedBeatConfig) -> redis.Redis:
    """``sentinel://:pw@h1:26379;sentinel://:pw@h2:26379/0`` (or ``redis-sentinel://``).

    The URL's username/password are the master's (as in Celery); the
    sentinels' own password goes in ``sentinel_kwargs``.
    """
    options = config.redis_options
    kwargs = _client_kwargs(config)
    url = _UrlParts(config.redis_url, DEFAULT_SENTINEL_PORT, 'redbeat_redis_url')
    nodes = url.nodes + _nodes_option(options.get('sentinels') or [], 26379, 'sentinels')
    if not nodes:
        raise ConfigurationError(
            'redbeat_redis_url',
            'a sentinel URL needs at least one sentinel host '
            "(sentinel://host:26379;sentinel://host2:26379, or redbeat_redis_options['sentinels'])",
        )
    service = (
        options.get('service_name') or options.get('master_name') or url.query.get('master_name')
    )
    if not service:
        raise ConfigurationError(
            'redbeat_redis_options',
            "a sentinel URL needs the service name: set 'service_name' (or 'master_name') "
            "(celery-redbeat 2.x assumed 'master')",
        )
    if url.password is not None:
        kwargs.setdefault('password', url.password)
    if url.username is not None:
        kwargs.setdefault('username', url.username)
    db = int(kwargs.pop('db', url.db or 0))
    _check_credentials(kwargs, False)
    url_tls = {k: v for k, v in url.query.items() if k.startswith('ssl_')}
    tls = _tls(config, url_tls)
    if tls is not None:
        kwargs.update(tls, ssl=True)

    sentinel_kwargs = dict(options.get('sentinel_kwargs') or {})
    for key in ('socket_timeout', 'socket_connect_timeout'):
        sentinel_kwargs.setdefault(key, kwargs[key])
    # A sentinel that fails is skipped for the next one; redis-py's default
    # (3 retries from 1 s up) would stall every lookup by seconds.
    sentinel_kwargs.setdefault('retry', Retry(ExponentialWithJitterBackoff(0.2, 0.02), 1))
    sentinel_kwargs.setdefault('redis_connect_func', _explain_auth(_SENTINEL_AUTH_HINT))
    kwargs['redis_connect_func'] = _explain_auth(_REDIS_AUTH_HINT)
    sentinel = _Sentinel(  # type: ignore[no-untyped-call]
        nodes, sentinel_kwargs=sentinel_kwargs, **kwargs
    )
    interval = options.get('sentinel_check_interval', DEFAULT_SENTINEL_CHECK_INTERVAL)
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval < 0:
        raise ConfigurationError(
            "redbeat_redis_options['sentinel_check_interval']",
            f'must be a number of seconds >= 0 (0: only on errors), got {interval!r}',
        )
    master: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
        service, connection_pool_class=_FollowingPool, db=db, check_interval=interval
    )
    return master


# --- Cluster -------------------------------------------------------------------


def _cluster_client(config: RedBeatConfig) -> redis.Redis:
    """``redis-cluster://[user:pw@]h1:7000,h2:7001`` and/or ``startup_nodes`` in options.

    Returned typed as :class:`redis.Redis`: :class:`~redis.cluster.RedisCluster`
    offers every command redbeat uses with the same signatures, and the store
    handles the few that differ (pipelined PUBLISH, SCAN across nodes).
    """
    options = config.redis_options
    kwargs = _client_kwargs(config)
    url = _UrlParts(config.redis_url, DEFAULT_PORT, 'redbeat_redis_url')
    nodes = url.nodes + _nodes_option(
        options.get('startup_nodes') or [], DEFAULT_PORT, 'startup_nodes'
    )
    if not nodes:
        raise ConfigurationError(
            'redbeat_redis_url',
            'a cluster URL needs at least one node '
            "(redis-cluster://host:7000,host:7001, or redbeat_redis_options['startup_nodes'])",
        )
    if url.password is not None:
        kwargs.setdefault('password', url.password)
    if url.username is not None:
        kwargs.setdefault('username', url.username)
    db = int(kwargs.pop('db', url.db or 0))
    if db != 0:
        raise ConfigurationError('redbeat_redis_url', f'Redis Cluster has only db 0, not {db}')
    _check_credentials(kwargs, False)
    url_tls = {k: v for k, v in url.query.items() if k.startswith('ssl_')}
    tls = _tls(config, url_tls)
    if tls is not None:
        kwargs.update(tls, ssl=True)
    # The cluster client retries on its own (MOVED, failovers) with ``retry``.
    retry = kwargs.pop('retry')
    kwargs.pop('retry_on_error')
    try:
        client = RedisCluster(
            startup_nodes=[ClusterNode(h, p) for h, p in nodes],  # type: ignore[no-untyped-call]
            retry=retry,
            **kwargs,
        )
    except redis.AuthenticationError as exc:
        raise redis.AuthenticationError(
            f'Redis Cluster refused to authenticate ({exc}); {_REDIS_AUTH_HINT}'
        ) from None
    except redis.RedisError as exc:
        if 'auth' in str(exc).lower():
            raise redis.AuthenticationError(
                f'Redis Cluster refused to authenticate ({exc}); {_REDIS_AUTH_HINT}'
            ) from None
        raise
    except RedisClusterException as exc:
        # No startup node answered: a ConnectionError, which beat survives and retries.
        if not cluster_unreachable(exc):
            raise
        raise redis.ConnectionError(
            f'no node of Redis Cluster {config.masked_url} answered ({exc.__cause__})'
        ) from None
    return cast(redis.Redis, client)
