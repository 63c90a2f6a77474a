"""Every write door refuses what beat could not run, names the field, and writes nothing.

The doors: ``RedBeatSchedulerEntry.save``, :class:`redbeat.api.Schedule`, the
``redbeat`` commands (exit code 1) and ``redbeat import``.  After each refusal
Redis holds exactly what it held before (nothing at all, or the old entry).
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from celery.schedules import schedule

from redbeat import RedBeatSchedulerEntry
from redbeat.api import Schedule
from redbeat.errors import DefinitionError
from tests.cli.test_cli import Invoke, run  # noqa: F401  (the fixture)
from tests.integration.test_hostile import HOSTILE

DEEP: Any = []
for _ in range(40):
    DEEP = [DEEP]

CLI_REFUSALS = [
    pytest.param(['--rrule', 'FREQ=SECONDLY;INTERVAL=0'], 'rrule interval', id='rrule-interval-0'),
    pytest.param(['--rrule', 'FREQ=SECONDLY;COUNT=0'], 'rrule count', id='rrule-count-0'),
    pytest.param(['--rrule', 'FREQ=SECONDLY;BYSETPOS=5'], 'bysetpos', id='rrule-bysetpos-5'),
    pytest.param(['--every', '1e-9'], 'interval every', id='every-1e-9'),
    pytest.param(['--every', '1e12'], 'interval every', id='every-1e12'),
    pytest.param(['--every', '60', '--jitter', 'nan'], 'jitter', id='jitter-nan'),
    pytest.param(['--every', '60', '--catchup-window', 'inf'], 'catchup', id='window-inf'),
    pytest.param(['--every', '60', '--args', '[NaN]'], 'args', id='args-nan'),
    pytest.param(['--every', '60', '--args', json.dumps(DEEP)], 'nests deeper', id='args-deep'),
]


def _dump(client: redis.Redis) -> dict[str, Any]:
    return {key: client.dump(key) for key in sorted(client.keys('*'))}


@pytest.mark.parametrize(('options', 'field'), CLI_REFUSALS)
def test_cli_add_refuses_and_writes_nothing(
    run: Invoke,  # noqa: F811
    redis_client: redis.Redis,
    options: list[str],
    field: str,
) -> None:
    result = run('add', 'x', 'proj.tasks.x', *options)
    assert result.exit_code == 1, result.output
    assert field in result.output
    assert redis_client.keys('*') == []


@pytest.mark.parametrize(('options', 'field'), CLI_REFUSALS)
def test_cli_edit_refuses_and_leaves_the_entry(
    run: Invoke,  # noqa: F811
    redis_client: redis.Redis,
    options: list[str],
    field: str,
) -> None:
    assert run('add', 'x', 'proj.tasks.x', '--every', '30s').exit_code == 0
    before = _dump(redis_client)
    result = run('edit', 'x', *options)
    assert result.exit_code == 1, result.output
    assert field in result.output
    assert _dump(redis_client) == before


def test_cli_import_refuses_and_writes_nothing(
    run: Invoke,  # noqa: F811
    redis_client: redis.Redis,
    tmp_path: Path,
) -> None:
    path = tmp_path / 'schedule.json'
    path.write_text(json.dumps({
        'good': {'task': 'proj.g', 'schedule': 60},
        'tiny': {'task': 'proj.t', 'schedule': {'__type__': 'interval', 'every': 1e-9}},
    }))  # fmt: skip
    result = run('import', str(path))
    assert result.exit_code == 1 and 'interval every' in result.output, result.output
    assert redis_client.keys('*') == []


API_REFUSALS = [
    pytest.param({'schedule': timedelta(microseconds=1)}, 'interval every', id='every-1us'),
    pytest.param({'schedule': timedelta(days=200 * 365)}, 'interval every', id='every-200y'),
    pytest.param({'args': [float('nan')]}, 'args', id='args-nan'),
    pytest.param({'kwargs': {'when': float('inf')}}, 'kwargs', id='kwargs-inf'),
    pytest.param({'args': DEEP}, 'nests deeper', id='args-deep'),
    pytest.param({'args': ['x' * (1 << 20)]}, 'bytes', id='definition-over-1-mib'),
    pytest.param({'args': ['\udcff']}, 'surrogate', id='lone-surrogate'),
    pytest.param({'jitter': float('nan')}, 'jitter', id='jitter-nan'),
    pytest.param({'catchup_window': 1e300}, 'catchup_window', id='window-1e300'),
]


@pytest.mark.parametrize(('given', 'field'), API_REFUSALS)
def test_api_add_refuses_and_writes_nothing(
    celery_app: Celery, redis_client: redis.Redis, given: dict[str, Any], field: str
) -> None:
    fields = {'schedule': 60.0, **given}
    with pytest.raises(DefinitionError) as caught:
        Schedule(celery_app).add('x', 'proj.tasks.x', **fields)
    assert field in caught.value.reason
    assert caught.value.key.endswith('x')
    assert redis_client.keys('*') == []


@pytest.mark.parametrize(
    ('sched', 'args', 'field'),
    [
        pytest.param(schedule(timedelta(seconds=1e-9)), [], 'interval every', id='every-0'),
        pytest.param(schedule(timedelta(days=40_000)), [], 'interval every', id='every-40000d'),
        pytest.param(schedule(60), [float('-inf')], 'args', id='args-inf'),
    ],
)
def test_entry_save_refuses_and_writes_nothing(
    celery_app: Celery, redis_client: redis.Redis, sched: schedule, args: list[Any], field: str
) -> None:
    entry = RedBeatSchedulerEntry('x', 'proj.tasks.x', sched, args=args, app=celery_app)
    with pytest.raises(DefinitionError) as caught:
        entry.save()
    assert field in caught.value.reason
    assert redis_client.keys('*') == []


def test_rrule_refuses_an_interval_of_zero() -> None:
    from redbeat.schedules import rrule

    with pytest.raises(ValueError, match='rrule interval'):
        rrule('SECONDLY', interval=0)


@pytest.mark.parametrize(('fields', 'reason'), HOSTILE)
def test_cli_reads_hostile_entries_without_a_traceback(
    run: Invoke,  # noqa: F811
    redis_client: redis.Redis,
    fields: dict[str, Any],
    reason: str,
) -> None:
    """``list``, ``show`` and ``check`` report a hostile entry as an error line."""
    redis_client.hset('redbeat:bad', mapping=fields)
    redis_client.zadd('redbeat::schedule', {'redbeat:bad': 0})
    for command in (['list'], ['show', 'bad'], ['check'], ['status']):
        result = run(*command)
        assert not isinstance(result.exception, Exception) or isinstance(
            result.exception, SystemExit
        ), (command, result.output, result.exception)
        assert result.exit_code in (0, 1), (command, result.output)
    assert reason in run('list').output + run('show', 'bad').output


def test_cli_reads_a_member_that_is_not_utf8_without_a_traceback(
    run: Invoke,  # noqa: F811
    redis_client: redis.Redis,
) -> None:
    redis_client.zadd('redbeat::schedule', {b'redbeat:b\xffd': 0, 'redbeat:fine': 1})  # type: ignore[dict-item]
    for command in (['list'], ['check'], ['status'], ['rm', '-y', '*']):
        result = run(*command)
        assert not isinstance(result.exception, Exception) or isinstance(
            result.exception, SystemExit
        ), (command, result.output, result.exception)


def test_entry_whose_next_run_is_past_year_9999_is_refused(
    celery_app: Celery, redis_client: redis.Redis
) -> None:
    from datetime import datetime, timezone

    last = datetime(9999, 6, 1, tzinfo=timezone.utc)
    entry = RedBeatSchedulerEntry('x', 'proj.tasks.x', schedule(timedelta(days=365)),
                                  app=celery_app, last_run_at=last)  # fmt: skip
    with pytest.raises(DefinitionError, match='9999'):
        entry.save()
    assert redis_client.keys('*') == []
