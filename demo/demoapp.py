"""The Celery app the demo runs: one task, broker and schedule on one Redis.

``DEMO_REDIS_URL`` names the server (set by run_demo.py): the schedule lives
in db 0 and the broker in db 1.
"""

from __future__ import annotations

import os

from celery import Celery

REDIS_URL = os.environ.get('DEMO_REDIS_URL', 'redis://127.0.0.1:6379')

app = Celery('demoapp')
app.conf.update(
    broker_url=f'{REDIS_URL}/1',
    redbeat_redis_url=f'{REDIS_URL}/0',
    beat_max_loop_interval=1,
    timezone='UTC',
    broker_connection_retry_on_startup=True,
)


@app.task(name='demoapp.hello')
def hello(name: str) -> str:
    return f'hello {name}'
