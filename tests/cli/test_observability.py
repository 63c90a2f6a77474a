"""``redbeat health``, ``status --json``, ``redbeat events``, and every example of
docs/observability.rst, run as written (commands through the installed
``redbeat`` script, YAML and Python blocks loaded verbatim) against a real
Redis and an in-process beat.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import redis
import yaml
from celery import Celery
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from redbeat.api import Schedule
from redbeat.cli import main
from redbeat.config import RedBeatConfig
from redbeat.keys import Keys
from redbeat.schedulers import RedBeatScheduler
from tests.integration.test_observability import free_port, put_due, put_unreadable

REPO_ROOT = Path(__file__).resolve().parents[2]
DOC = REPO_ROOT / 'docs' / 'observability.rst'
LOCK = 'redbeat::lock'
HEARTBEAT = 'redbeat::heartbeat'
Make = Callable[..., RedBeatScheduler]


def block(name: str) -> str:
    """The code block ``:name: <name>`` of docs/observability.rst, dedented."""
    text = DOC.read_text(encoding='utf-8')
    found = re.search(
        rf'^\.\. code-block:: \w+\n   :name: {re.escape(name)}\n\n((?:   .*\n|\n)+)', text, re.M
    )
    assert found, f'no block named {name} in {DOC}'
    return textwrap.dedent(found.group(1)).strip('\n') + '\n'


def shell(argv: list[str], redis_url: str) -> subprocess.CompletedProcess[str]:
    """A command as a shell or a probe runs it: ``redbeat`` found on PATH."""
    env = dict(os.environ, REDBEAT_REDIS_URL=redis_url, PYTHONPATH=str(REPO_ROOT))
    env['PATH'] = os.pathsep.join([str(Path(sys.executable).parent), env.get('PATH', '')])
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, cwd=REPO_ROOT)  # fmt: skip


def invoke(redis_url: str, *args: str) -> Any:
    return CliRunner().invoke(main, ['--url', redis_url, *args])


def masked(text: str) -> str:
    """Output with what varies from run to run (times, tokens, hosts, ages) masked."""
    text = re.sub(r'\d{4}-\d\d-\d\dT[\d:.]+\+00:00', '<time>', text)
    text = re.sub(r'[\w.-]+:\d+:[0-9a-f]{12}', '<token>', text)
    text = re.sub(r'beat=[\w.-]+:\d+', 'beat=<beat>', text)
    return re.sub(r'\d+(\.\d+)?s ago', '<n>s ago', text)


def ticked(make_scheduler: Make, app: Celery) -> RedBeatScheduler:
    scheduler = make_scheduler(app)
    scheduler.tick()
    return scheduler


# --- health --------------------------------------------------------------------


def test_health_fails_without_a_leader_then_passes_once_one_ticks(
    redis_url: str, celery_app: Celery, make_scheduler: Make
) -> None:
    result = invoke(redis_url, 'health')
    assert (result.exit_code, result.output) == (1, f'unhealthy: no beat holds the lock {LOCK}\n')

    scheduler = ticked(make_scheduler, celery_app)

    result = invoke(redis_url, 'health')
    assert result.exit_code == 0, result.output
    assert re.fullmatch(
        rf'ok: leader {re.escape(scheduler.leader.token)} ticked \d+\.\ds ago; nothing overdue\n',
        result.output,
    )


def test_health_fails_on_a_lock_without_heartbeat_an_old_tick_or_overdue_entries(
    redis_url: str, redis_client: redis.Redis, celery_app: Celery, make_scheduler: Make
) -> None:
    redis_client.set(LOCK, 'host:1:abcdefabcdef', px=10_000)
    result = invoke(redis_url, 'health')
    assert result.exit_code == 1
    assert result.output == f'unhealthy: no beat has ticked yet ({HEARTBEAT} is not set)\n'

    old = json.dumps({'at': time.time() - 120, 'beat': 'host:1:abcdefabcdef'})
    redis_client.set(HEARTBEAT, old)
    result = invoke(redis_url, 'health')
    assert result.exit_code == 1
    assert re.fullmatch(
        r'unhealthy: the last tick was 12\ds ago, by host:1:abcdefabcdef \(limit 60s\)\n',
        result.output,
    )
    assert invoke(redis_url, 'health', '--max-tick-age', '300').exit_code == 0

    redis_client.delete(LOCK)
    scheduler = ticked(make_scheduler, celery_app)
    scheduler.leader.held = False  # a leader stuck (say, in a long tick) no longer sends...
    redis_client.zadd('redbeat::schedule', {'redbeat:stuck': time.time() - 90})  # ... this
    result = invoke(redis_url, 'health')
    assert (result.exit_code, result.output) == (
        1, 'unhealthy: 1 entry has been due for more than 60s\n'
    )  # fmt: skip
    assert invoke(redis_url, 'health', '--max-overdue', '120').exit_code == 0


def test_health_without_a_lock_allows_an_idle_beat_to_sleep(
    redis_client: redis.Redis, celery_app: Celery
) -> None:
    celery_app.conf.update(redbeat_lock_key=None, beat_max_loop_interval=300)
    schedule = Schedule.from_app(celery_app)
    redis_client.set(HEARTBEAT, json.dumps({'at': time.time() - 200, 'beat': 'h:1:abcdefabcdef'}))
    verdict = schedule.health()
    assert verdict.ok, verdict.reason  # an idle beat without a lock sleeps up to 300 s
    redis_client.set(HEARTBEAT, json.dumps({'at': time.time() - 400, 'beat': 'h:1:abcdefabcdef'}))
    verdict = schedule.health()
    assert not verdict.ok and verdict.reason.endswith('(limit 360s)')


def test_status_json_has_the_last_tick(
    redis_url: str, celery_app: Celery, make_scheduler: Make
) -> None:
    before = time.time()
    scheduler = ticked(make_scheduler, celery_app)
    data = json.loads(invoke(redis_url, 'status', '--json').output)
    assert data['ticked_by'] == scheduler.leader.token == data['lock_holder']
    assert data['last_tick'] is not None
    assert invoke(redis_url, 'status').output.splitlines()[-1].startswith('last tick: ')
    assert datetime.fromisoformat(data['last_tick']).timestamp() >= before - 1e-3


# --- the examples of docs/observability.rst ---------------------------------------


def scrape(port: int) -> dict[str, str]:
    """Metric family name -> type, from beat's /metrics over 127.0.0.1."""
    with urllib.request.urlopen(f'http://127.0.0.1:{port}/metrics', timeout=10) as reply:
        text = reply.read().decode()
    return {f.name: f.type for f in text_string_to_metric_families(text)}


def test_metrics_settings_example_and_alert_rules(
    celery_app: Celery, redis_client: redis.Redis, make_scheduler: Make
) -> None:
    exec(block('metrics-settings'), {'app': celery_app})
    config = RedBeatConfig.from_app(celery_app)
    assert (config.metrics, config.metrics_address, config.events_maxlen) == (9808, '0.0.0.0',
                                                                              10_000)  # fmt: skip
    port = free_port()  # the example's port may be taken on a shared machine
    celery_app.conf.update(redbeat_metrics=port, redbeat_metrics_address='127.0.0.1')
    put_due(redis_client, Keys(), 'job')
    put_unreadable(redis_client, Keys())
    ticked(make_scheduler, celery_app)
    families = scrape(port)

    rules = yaml.safe_load(block('alert-rules'))['groups'][0]['rules']
    assert [r['alert'] for r in rules] == [
        'RedbeatNoLeader', 'RedbeatSendsLate', 'RedbeatParkedEntries',
    ]  # fmt: skip
    for rule in rules:
        for name in re.findall(r'redbeat_[a-z_]+', rule['expr']):
            family = re.sub(r'_(bucket|sum|count)$', '', name)
            assert family in families, (rule['alert'], name, sorted(families))
    assert families['redbeat_send_lateness_seconds'] == 'histogram'  # has _bucket
    assert families['redbeat_leader'] == families['redbeat_entries_parked'] == 'gauge'
    # every metric the page lists is served, and every metric served is listed
    text = DOC.read_text(encoding='utf-8')
    table = text[text.index('The metrics\n') : text.index('Alerts\n')]
    listed = set(re.findall(r'^   \* - ``(redbeat_[a-z_]+)``', table, re.M))
    served = {n + '_total' if t == 'counter' else n for n, t in families.items()}
    assert listed == {n for n in served if n.startswith('redbeat_') and 'created' not in n}


def test_kubernetes_probe_example_runs_as_written(
    redis_url: str, celery_app: Celery, make_scheduler: Make
) -> None:
    (container,) = yaml.safe_load(block('k8s-probe'))['containers']
    assert container['command'][-2:] == ['-S', 'redbeat.RedBeatScheduler']
    assert [e['name'] for e in container['env']] == ['REDBEAT_REDIS_URL']
    probe = container['livenessProbe']['exec']['command']

    down = shell(probe, redis_url)  # the URL the pod would get from its env
    assert (down.returncode, down.stdout) == (1, f'unhealthy: no beat holds the lock {LOCK}\n')

    ticked(make_scheduler, celery_app)
    up = shell(probe, redis_url)
    assert up.returncode == 0 and up.stdout.startswith('ok: leader '), up.stdout + up.stderr


def console(name: str) -> list[tuple[str, str]]:
    """The ``$ command`` lines of a console block, each with the output shown under it."""
    pairs: list[tuple[str, str]] = []
    for line in block(name).splitlines():
        if line.startswith('$ '):
            pairs.append((line[2:], ''))
        else:
            pairs[-1] = (pairs[-1][0], pairs[-1][1] + line + '\n')
    return pairs


def test_health_console_example(
    redis_url: str, redis_client: redis.Redis, celery_app: Celery, make_scheduler: Make
) -> None:
    (healthy, shown_ok), (strict, shown_bad) = console('health-console')
    scheduler = ticked(make_scheduler, celery_app)
    result = shell(shlex.split(healthy), redis_url)
    assert result.returncode == 0
    assert masked(result.stdout) == masked(shown_ok)

    token = scheduler.leader.token
    redis_client.set(HEARTBEAT, json.dumps({'at': time.time() - 95, 'beat': token}))
    result = shell(shlex.split(strict), redis_url)
    assert result.returncode == 1
    assert masked(result.stdout) == masked(shown_bad)


def test_events_console_example(
    redis_url: str, redis_client: redis.Redis, celery_app: Celery, make_scheduler: Make
) -> None:
    ((command, shown),) = console('events-console')
    celery_app.conf.redbeat_events = True
    redis_client.hset('redbeat:broken', 'definition', 'oops')
    redis_client.zadd('redbeat::schedule', {'redbeat:broken': 0})
    scheduler = ticked(make_scheduler, celery_app)
    scheduler.tick()  # the parked event goes with this tick's round trip
    result = shell(shlex.split(command), redis_url)
    assert result.returncode == 0, result.stderr
    assert masked(result.stdout) == masked(shown)
