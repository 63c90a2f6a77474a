"""A Celery app for the ``celery -A tests.cli.celeryapp redbeat ...`` tests.

Its Redis URLs come from the environment, so a subprocess points it at the
test suite's private server.
"""

from __future__ import annotations

import os

from celery import Celery

app = Celery('cliapp')
app.conf.update(
    broker_url=os.environ.get('CLI_TEST_BROKER_URL', 'redis://127.0.0.1:1/1'),
    redbeat_redis_url=os.environ.get('CLI_TEST_REDIS_URL', 'redis://127.0.0.1:1/0'),
    redbeat_key_prefix=os.environ.get('CLI_TEST_PREFIX', 'redbeat:'),
    timezone='UTC',
    result_backend=None,
)


@app.task(name='cliapp.echo')
def echo(value: object) -> object:
    return value
