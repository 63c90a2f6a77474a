"""A real ``celery beat`` process serving metrics, scraped over 127.0.0.1, and
``redbeat health`` (the installed script) following it as it runs and stops."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.cli.test_observability import shell
from tests.e2e.harness import PasswordRedisServer, app_env, cluster
from tests.integration.test_observability import free_port
from tests.procs import wait_for

pytestmark = pytest.mark.e2e


def scrape(port: int) -> dict[str, float]:
    """Samples by name (labels dropped: summed) of beat's /metrics."""
    try:
        with urllib.request.urlopen(f'http://127.0.0.1:{port}/metrics', timeout=5) as reply:
            text = reply.read().decode()
    except OSError:
        return {}  # not serving (yet)
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name] = out.get(sample.name, 0.0) + sample.value
    return out


def test_celery_beat_serves_metrics_and_health_follows_it(
    password_server: PasswordRedisServer, tmp_path: Path
) -> None:
    with password_server.client() as client:
        client.flushall()
    port = free_port()
    url = password_server.url_for(0)
    env = app_env(tmp_path, url, password_server.url_for(1), lock_timeout=3,
                  static={'obs-1s': 1})  # fmt: skip
    env['E2E_METRICS_PORT'] = str(port)
    with cluster(tmp_path, env) as c:
        beat = c.beat()
        sent = wait_for(
            lambda: scrape(port).get('redbeat_occurrences_sent_total', 0) >= 2 or not beat.alive,
            60,
            message='beat sent two occurrences, as its metrics say',
        )
        assert beat.alive and sent, beat.log()
        metrics = scrape(port)
        assert metrics['redbeat_leader'] == 1
        assert metrics['redbeat_lock_acquisitions_total'] == 1
        assert metrics['redbeat_tick_duration_seconds_count'] >= 2
        assert metrics['redbeat_send_lateness_seconds_count'] >= 2
        assert metrics['redbeat_entries'] >= 1

        healthy = shell(['redbeat', 'health'], url)
        assert healthy.returncode == 0 and healthy.stdout.startswith('ok: leader '), (
            healthy.stdout + healthy.stderr
        )

        beat.stop(timeout=20)  # a clean stop releases the lock
        stopped = shell(['redbeat', 'health'], url)
        assert stopped.returncode == 1
        assert stopped.stdout == 'unhealthy: no beat holds the lock redbeat::lock\n'
        events = shell(['redbeat', 'events'], url)
        assert 'leader_gained' in events.stdout, events.stdout + events.stderr
