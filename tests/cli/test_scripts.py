"""Installed entry points as processes: ``redbeat``, ``python -m redbeat``, ``celery redbeat``.

These need ``pip install -e .`` (the console script and the ``celery.commands``
entry point come from the package metadata).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import redis

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _run(argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    environ = dict(os.environ, PYTHONPATH=str(REPO_ROOT), **env)
    environ.pop('REDBEAT_REDIS_URL', None)
    environ.update(env)
    return subprocess.run(
        argv, cwd=REPO_ROOT, env=environ, capture_output=True, text=True, timeout=60,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def _script(name: str) -> str:
    found = BIN / name
    if not found.exists():
        found = Path(shutil.which(name) or '')
    if not found.is_file():
        pytest.fail(f'{name} is not installed: pip install -e {REPO_ROOT}', pytrace=False)
    return str(found)


def test_console_script_and_python_m(redis_url: str, redis_client: redis.Redis) -> None:
    added = _run([_script('redbeat'), 'add', 'ping', 'proj.ping', '--every', '5m'],
                 REDBEAT_REDIS_URL=redis_url)  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert added.stdout == 'saved ping: proj.ping every 5 min\n'
    assert redis_client.zscore('redbeat::schedule', 'redbeat:ping') is not None
    listed = _run([sys.executable, '-m', 'redbeat', '--url', redis_url, 'list'])
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[1].startswith('ping  proj.ping  every 5 min  -     yes')
    usage = _run([sys.executable, '-m', 'redbeat', 'list'])
    assert usage.returncode == 2 and 'say where the schedule is' in usage.stderr


def test_celery_subcommand_uses_the_app_settings(redis_url: str, redis_client: redis.Redis) -> None:
    env = {'CLI_TEST_REDIS_URL': redis_url, 'CLI_TEST_PREFIX': 'proj:'}
    celery = [_script('celery'), '-A', 'tests.cli.celeryapp', 'redbeat']
    added = _run([*celery, 'add', 'nightly', 'cliapp.echo', '--cron', '0 3 * * *'], **env)
    assert added.returncode == 0, added.stderr
    assert redis_client.zrange('proj::schedule', 0, -1) == ['proj:nightly']
    listed = _run([*celery, 'list'], **env)
    assert listed.returncode == 0, listed.stderr
    assert 'nightly  cliapp.echo  at 03:00' in listed.stdout
    missing = _run([*celery, 'show', 'nope'], **env)
    assert missing.returncode == 1 and 'proj:nope: no such entry' in missing.stderr


def test_celery_subcommand_without_settings_is_a_usage_error(redis_url: str) -> None:
    result = _run([_script('celery'), 'redbeat', 'list'])
    assert result.returncode == 2
    assert 'redbeat_redis_url: is not set' in result.stderr
    by_url = _run([_script('celery'), 'redbeat', '--url', redis_url, 'list'])
    assert by_url.returncode == 0 and by_url.stdout == 'no entries\n'
