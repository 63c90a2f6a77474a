"""Building the Redis client from a :class:`~redbeat.config.RedBeatConfig`.

The client decodes responses to ``str`` (everything redbeat stores is JSON)
and retries a failed command a few times with jittered exponential backoff,
using redis-py's own :class:`~redis.retry.Retry`.  Longer outages are handled
by the scheduler, which keeps running and tries again on its next tick.
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from .config import RedBeatConfig
from .errors import ConfigurationError

#: redbeat_redis_options keys passed on to the redis-py client.
CLIENT_OPTIONS = (
    'socket_timeout',
    'socket_connect_timeout',
    'socket_keepalive',
    'health_check_interval',
    'username',
    'password',
    'client_name',
    'max_connections',
    'db',
    'credential_provider',
)
_SSL_REQS = {'none': ssl.CERT_NONE, 'optional': ssl.CERT_OPTIONAL, 'required': ssl.CERT_REQUIRED}


def command_retry() -> Retry:
    """Retry policy for single commands: 3 retries, 50 ms doubling to 1 s, jittered."""
    return Retry(ExponentialWithJitterBackoff(cap=1.0, base=0.05), retries=3)


def _client_kwargs(config: RedBeatConfig) -> dict[str, Any]:
    options = config.redis_options
    kwargs = {k: options[k] for k in CLIENT_OPTIONS if k in options}
    kwargs.setdefault('socket_timeout', 5.0)
    kwargs.setdefault('socket_connect_timeout', 5.0)
    kwargs.setdefault('health_check_interval', 30)
    kwargs['decode_responses'] = True
    kwargs['retry'] = command_retry()
    kwargs['retry_on_error'] = [redis.ConnectionError, redis.TimeoutError]
    return kwargs


def _ssl_kwargs(config: RedBeatConfig) -> dict[str, Any]:
    if not isinstance(config.use_ssl, dict):
        return {}
    out: dict[str, Any] = {}
    for key, value in config.use_ssl.items():
        if key == 'ssl_cert_reqs' and isinstance(value, str):
            if value.lower().removeprefix('cert_') not in _SSL_REQS:
                raise ConfigurationError(
                    'redbeat_redis_use_ssl',
                    f'ssl_cert_reqs {value!r} is not none/optional/required',
                )
            value = _SSL_REQS[value.lower().removeprefix('cert_')]
        out[key] = value
    return out


def _sentinel_client(config: RedBeatConfig, kwargs: dict[str, Any]) -> redis.Redis:
    """``sentinel://h1:26379;sentinel://h2:26379/0`` or ``redis-sentinel://h:26379/0``."""
    options = config.redis_options
    nodes: list[tuple[str, int]] = list(options.get('sentinels') or [])
    password = None
    db = 0
    for part in config.redis_url.split(';'):
        parsed = urlsplit(part.strip())
        if parsed.hostname:
            nodes.append((parsed.hostname, parsed.port or 26379))
        password = password or parsed.password
        if parsed.path.strip('/').isdigit():
            db = int(parsed.path.strip('/'))
    if not nodes:
        raise ConfigurationError(
            'redbeat_redis_url', 'a sentinel URL needs at least one sentinel host'
        )
    service = options.get('service_name') or options.get('master_name')
    if not service:
        raise ConfigurationError(
            'redbeat_redis_options', "a sentinel URL needs 'service_name' (or 'master_name')"
        )
    kwargs.setdefault('password', password)
    kwargs.setdefault('db', db)
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        nodes,
        sentinel_kwargs=options.get('sentinel_kwargs')
        or {'socket_timeout': kwargs['socket_timeout']},
        **{k: v for k, v in kwargs.items() if k != 'db'},
    )
    master: redis.Redis = sentinel.master_for(service, db=kwargs['db'])  # type: ignore[no-untyped-call]
    return master


def redis_from_config(config: RedBeatConfig) -> redis.Redis:
    """A client for the schedule's Redis, as the settings describe it."""
    kwargs = _client_kwargs(config)
    scheme = urlsplit(config.redis_url.split(';')[0]).scheme
    if scheme in ('sentinel', 'redis-sentinel'):
        return _sentinel_client(config, kwargs)
    if scheme == 'redis-cluster':
        raise ConfigurationError('redbeat_redis_url', 'redis-cluster:// is not supported yet')
    kwargs.update(_ssl_kwargs(config))
    if scheme == 'rediss' and config.use_ssl is False:
        query = dict(parse_qsl(urlsplit(config.redis_url).query))
        kwargs.setdefault('ssl_cert_reqs', query.get('ssl_cert_reqs', 'required'))
    return redis.Redis.from_url(config.redis_url, **kwargs)
