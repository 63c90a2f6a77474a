"""Every example of docs/migrating.rst, run verbatim."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from celery.schedules import crontab, solar
from click.testing import CliRunner

from redbeat import RedBeatSchedulerEntry
from redbeat.cli import main
from tests.docs import steps

PAGE = Path(__file__).resolve().parents[2] / 'docs' / 'migrating.rst'


def blocks(language: str) -> list[str]:
    """The page's ``code-block:: <language>`` bodies, dedented, in order."""
    found = []
    pattern = rf'^\.\. code-block:: {language}\n\n((?:    .*\n|\n)+)'
    for match in re.finditer(pattern, PAGE.read_text(), flags=re.M):
        lines = match.group(1).rstrip('\n').splitlines()
        found.append('\n'.join(line[4:] for line in lines) + '\n')
    return found


def test_page_examples_are_all_tested() -> None:
    # python: list every entry, the audited subclass.  console: installing (its pip
    # lines run in tests/compat/test_install_e2e.py), check --for-2x, the redisbeat import.
    assert len(blocks('python')) == 2 and len(blocks('console')) == 3


def test_list_every_entry(celery_app: Celery) -> None:
    RedBeatSchedulerEntry('a', 'proj.tasks.a', crontab(), app=celery_app).save()
    RedBeatSchedulerEntry('b', 'proj.tasks.b', crontab(hour='3'), app=celery_app).save()
    names: dict[str, Any] = {'app': celery_app}
    exec(blocks('python')[0], names)
    assert sorted(e.name for e in names['entries']) == ['a', 'b']


def test_audited_subclass(celery_app: Celery, redis_client: redis.Redis) -> None:
    celery_app.conf.redbeat_lock_key = None
    names: dict[str, Any] = {}
    exec(blocks('python')[1], names)
    every = {'__type__': 'interval', 'every': 60, 'relative': False}
    for name in ('one', 'two'):
        definition = {'name': name, 'task': f'proj.tasks.{name}', 'schedule': every}
        redis_client.hset(f'redbeat:{name}', 'definition', json.dumps(definition))
        redis_client.zadd('redbeat::schedule', {f'redbeat:{name}': 0})
    scheduler = names['AuditedScheduler'](app=celery_app)
    scheduler.listen_for_changes = False
    try:
        scheduler.tick()
        scheduler.tick()
    finally:
        scheduler.close()
    assert sorted(name for name, _ in scheduler.sent) == ['one', 'two']
    assert all(task_id for _, task_id in scheduler.sent)


def test_check_for_2x(celery_app: Celery, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    RedBeatSchedulerEntry('dawn', 'proj.tasks.t', solar('dawn_civil', 1, 2), app=celery_app).save()
    monkeypatch.setenv('REDBEAT_REDIS_URL', redis_url)
    [command] = [line[2:] for line in blocks('console')[1].splitlines() if line.startswith('$ ')]
    argv = shlex.split(command)
    assert argv[0] == 'redbeat'
    result = CliRunner().invoke(main, argv[1:])
    assert result.exit_code == 1
    assert 'dawn: a solar schedule' in result.output


def test_version_line_of_the_install_steps() -> None:
    [(pip_uninstall, _), (pip_install, _), (version, _)] = steps(blocks('console')[0])
    assert pip_uninstall == 'pip uninstall -y celery-redbeat'
    assert pip_install == 'pip install redbeat-scheduler'
    result = CliRunner().invoke(main, shlex.split(version)[1:])
    assert result.exit_code == 0 and result.output.startswith('redbeat ')
    assert 'WARNING' not in result.output  # no celery-redbeat in this environment


def test_redisbeat_import(celery_app: Celery, redis_url: str, redis_client: redis.Redis,
                          monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from tests.compat.test_redisbeat import redisbeat_add

    redisbeat_add(celery_app, redis_url, name='nightly', task='proj.tasks.report',
                  schedule=crontab(hour=3, minute=0))  # fmt: skip
    monkeypatch.setenv('REDBEAT_REDIS_URL', redis_url)
    for command, shown in steps(blocks('console')[2]):
        argv = shlex.split(command)
        assert argv[0] == 'redbeat'
        result = CliRunner().invoke(main, argv[1:])
        assert result.exit_code == 0, result.output
        assert result.output.splitlines() == shown
    assert redis_client.exists('redbeat:nightly')
