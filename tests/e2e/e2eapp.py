"""The Celery app that end-to-end and HA tests run as real worker and beat processes.

Configured from the environment (see :func:`tests.e2e.harness.app_env`):

``E2E_REDIS_URL``     the schedule's Redis (``redbeat_redis_url``)
``E2E_BROKER_URL``    the broker
``E2E_RECORD_DIR``    where records are appended (one JSON object a line)
``E2E_LOCK_TIMEOUT``  ``redbeat_lock_timeout`` in seconds (default: redbeat's)
``E2E_STATIC``        JSON ``{"name": every_seconds}``: the ``beat_schedule``
``E2E_REDIS_OPTIONS`` JSON: ``redbeat_redis_options`` (e.g. a Sentinel service name)
``E2E_NO_STAMP``      set: no ``before_task_publish`` receiver (see below)

Every task the tests schedule is ``e2eapp.record(entry_name)``.  Each process
that publishes it stamps the message with its pid and the send time (header
``e2e_sender``); the worker appends one line per execution to
``executions.jsonl``: ``{entry, task_id, received_at, pid, sender_pid,
sent_at, redelivered}`` (``redelivered``: the broker handed the message out
again, e.g. kombu's Redis transport restoring an unacknowledged one).
Lines are written with one ``write`` on an ``O_APPEND`` file, so processes
never interleave them.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import before_task_publish

RECORD_DIR = Path(os.environ.get('E2E_RECORD_DIR', '.'))
EXECUTIONS = 'executions.jsonl'
SENDER_HEADER = 'e2e_sender'

app = Celery('e2eapp')
_static = json.loads(os.environ.get('E2E_STATIC') or '{}')
app.conf.update(
    broker_url=os.environ.get('E2E_BROKER_URL', 'redis://127.0.0.1:6379/1'),
    redbeat_redis_url=os.environ.get('E2E_REDIS_URL', 'redis://127.0.0.1:6379/0'),
    beat_max_loop_interval=1,
    timezone='UTC',
    result_backend=None,
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_prefetch_multiplier=20,
    beat_schedule={
        name: {'task': 'e2eapp.record', 'schedule': float(every), 'args': [name]}
        for name, every in _static.items()
    },
)
if os.environ.get('E2E_REDIS_OPTIONS'):
    app.conf.redbeat_redis_options = json.loads(os.environ['E2E_REDIS_OPTIONS'])
if os.environ.get('E2E_LOCK_TIMEOUT'):
    app.conf.redbeat_lock_timeout = float(os.environ['E2E_LOCK_TIMEOUT'])
if os.environ.get('E2E_METRICS_PORT'):  # metrics on this port of 127.0.0.1, and events
    app.conf.update(redbeat_metrics=int(os.environ['E2E_METRICS_PORT']),
                    redbeat_metrics_address='127.0.0.1', redbeat_events=True)  # fmt: skip


def append_record(filename: str, record: dict[str, Any]) -> None:
    line = (json.dumps(record) + '\n').encode()
    fd = os.open(RECORD_DIR / filename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def _stamp_sender(
    sender: str | None = None, headers: dict[str, Any] | None = None, **_: Any
) -> None:
    """Say which process sent the message, and when (read back by the worker)."""
    if sender == 'e2eapp.record' and headers is not None:
        headers[SENDER_HEADER] = {'pid': os.getpid(), 'at': time.time()}


# E2E_NO_STAMP: no before_task_publish receiver, so beat may build messages
# itself (redbeat.templates, redbeat.direct); records then lack the sender.
if not os.environ.get('E2E_NO_STAMP'):
    before_task_publish.connect(_stamp_sender)


@app.task(name='e2eapp.record', bind=True)
def record(self: Any, entry: str) -> None:
    stamp = self.request.get(SENDER_HEADER) or (self.request.headers or {}).get(SENDER_HEADER)
    stamp = stamp or {}
    delivery = self.request.delivery_info or {}
    redelivered = bool(delivery.get('redelivered') or self.request.get('redelivered'))
    append_record(
        EXECUTIONS,
        {
            'entry': entry,
            'task_id': self.request.id,
            'received_at': time.time(),
            'pid': os.getpid(),
            'sender_pid': stamp.get('pid'),
            'sent_at': stamp.get('at'),
            'redelivered': redelivered,
        },
    )
