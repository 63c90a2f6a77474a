"""A Celery app for test_env_rule.py: its config names ENVAPP_REDIS_URL's server."""

from __future__ import annotations

import os

from celery import Celery

app = Celery('envapp')
app.conf.update(
    broker_url=os.environ.get('ENVAPP_BROKER_URL', 'redis://127.0.0.1:1/1'),
    redbeat_redis_url=os.environ.get('ENVAPP_REDIS_URL', 'redis://127.0.0.1:1/0'),
    timezone='UTC',
    result_backend=None,
    beat_schedule={'k8s': {'task': 'envapp.echo', 'schedule': 60}},
)
