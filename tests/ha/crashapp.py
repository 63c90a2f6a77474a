"""The Celery app the crash-loss fault tests run as real ``celery beat`` processes.

Unlike :mod:`e2eapp` it has no ``before_task_publish`` receiver, so beat
sends through its fast path, in kombu batches: the path a crash can cut.
No worker runs it; the tests count the messages in the broker's queue.

``CRASH_REDIS_URL``    the schedule's Redis (``redbeat_redis_url``)
``CRASH_BROKER_URL``   the broker
``CRASH_LOCK_TIMEOUT`` ``redbeat_lock_timeout`` in seconds
``CRASH_DELIVERY``     ``redbeat_delivery``
"""

from __future__ import annotations

import os

from celery import Celery

app = Celery('crashapp')
app.conf.update(
    broker_url=os.environ['CRASH_BROKER_URL'],
    redbeat_redis_url=os.environ['CRASH_REDIS_URL'],
    redbeat_lock_timeout=float(os.environ['CRASH_LOCK_TIMEOUT']),
    redbeat_delivery=os.environ['CRASH_DELIVERY'],
    beat_max_loop_interval=1,
    timezone='UTC',
    result_backend=None,
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
)
