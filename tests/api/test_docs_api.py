"""The Python examples of the pages that show the management API, run verbatim.

Each block is run as the page shows it, with what the page assumes the reader
has: ``app`` (a Celery app whose settings point at the suite's Redis) and the
names the page imports in other blocks or on other pages.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from celery import Celery
from celery.schedules import crontab

from redbeat import RedBeatSchedulerEntry
from redbeat.api import ScheduleClient
from tests.docs import blocks
from tests.redis_server import RedisServer


def run(block: str, app: Celery) -> dict[str, Any]:
    names: dict[str, Any] = {
        'app': app,
        'crontab': crontab,
        'datetime': datetime,
        'timezone': timezone,
        'RedBeatSchedulerEntry': RedBeatSchedulerEntry,
        'ScheduleClient': ScheduleClient,
    }
    exec(block, names)
    return names


def test_bounded_and_one_off(celery_app: Celery) -> None:
    client = ScheduleClient(celery_app)
    client.add('nightly', 'proj.tasks.report', crontab(minute=0, hour=3), history=5)
    page = blocks('bounded-and-one-off.rst', 'python')
    assert len(page) == 5

    for block in page:
        run(block, celery_app)

    launch = client.get('launch', history=None)
    assert launch.kwargs == {'product': 'x'} and launch.policy.on_finish == 'disable'
    trial = client.get('trial-reminder', history=None).policy
    assert (trial.max_runs, trial.on_finish) == (14, 'delete')
    assert client.get('sync-42', history=None).policy.jitter == 300
    assert client.get('quarterly', history=None).policy.anchor == datetime(
        2026, 1, 1, tzinfo=timezone.utc
    )


def test_timezones(celery_app: Celery) -> None:
    [block] = [b for b in blocks('timezones.rst', 'python') if 'ScheduleClient' in b]
    run(block, celery_app)
    assert ScheduleClient(celery_app).get('paris-report').policy.timezone == 'Europe/Paris'


def test_missed_runs(celery_app: Celery) -> None:
    [block] = [b for b in blocks('missed-runs.rst', 'python') if 'ScheduleClient' in b]
    run(block, celery_app)
    client = ScheduleClient(celery_app)
    billing = client.get('billing', history=None).policy
    assert (billing.missed, billing.missed_limit, billing.catchup_window) == ('all', 24, 86400)
    assert client.get('poll', history=None).policy.missed == 'skip'


def test_cli_page_from_python(
    celery_app: Celery, redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    [block] = [b for b in blocks('cli.rst', 'python') if 'ScheduleClient' in b]
    run(block, celery_app)

    client = ScheduleClient(celery_app)
    assert client.names() == ['launch', 'nightly', 'paris']
    assert client.get('nightly', history=None).enabled  # disabled, then enabled again
    assert client.get('paris', history=None).policy.missed == 'skip'
    printed = sorted(line.split()[0] for line in capsys.readouterr().out.splitlines())
    assert printed == ['reports.daily', 'reports.weekly']
    with redis_server.client(db=1) as broker:  # run_now sent one message to its queue
        assert broker.llen('reports') == 1
