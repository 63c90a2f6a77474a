"""The leader lock against a real Redis: renewal when a lock script is missing.

After a Sentinel failover the new master has none of the scripts the old
one had (scripts are not replicated).  redis-py loads a missing script and
runs it again once; when that load reached the old master and the run the
new one, the renewal raised ``NoScriptError`` out of the tick and ``celery
beat`` exited (seen in tests/topology/test_sentinel.py).
"""

from __future__ import annotations

from typing import Any

import pytest
import redis
from celery import Celery
from redis.exceptions import NoScriptError

from redbeat.leader import Leadership
from redbeat.schedulers import REDIS_ERRORS
from tests.redis_server import HOST, free_port

LOCK = 'redbeat::lock'


@pytest.mark.parametrize('backend', ['redis'], indirect=True)
def test_renewal_survives_a_lock_script_missing_twice(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    leader = Leadership(redis_client, LOCK, 3.0)
    assert leader.ensure(clock=0.0)
    redis_client.pexpire(LOCK, 1000)  # so a renewal shows
    real = redis_client.evalsha
    missing = [2]

    def evalsha(*args: Any, **kwargs: Any) -> Any:
        if missing[0]:
            missing[0] -= 1
            raise NoScriptError('No matching script. Please use EVAL.')
        return real(*args, **kwargs)

    monkeypatch.setattr(redis_client, 'evalsha', evalsha)
    assert leader.ensure(clock=leader.renew_every + 0.1)  # a renewal is due
    assert missing == [0]
    assert leader.held
    assert redis_client.get(LOCK) == leader.token
    assert redis_client.pttl(LOCK) > 2000  # renewed to the full timeout


def test_a_missing_script_is_an_error_beat_survives() -> None:
    assert issubclass(NoScriptError, REDIS_ERRORS)


def test_the_first_redis_errors_are_retried_quickly(make_scheduler: Any) -> None:
    """A failover's few seconds of errors are crossed without sleeping through its end."""
    app = Celery('backoff')
    app.conf.update(
        redbeat_redis_url=f'redis://{HOST}:{free_port()}/0',  # nothing listens there
        broker_url='memory://',
        redbeat_redis_options={'socket_connect_timeout': 0.2},
    )
    scheduler = make_scheduler(app)
    delays = [scheduler.tick() for _ in range(6)]
    assert delays == [0.5, 0.5, 0.5, 1.0, 2.0, 4.0]
    app.close()
