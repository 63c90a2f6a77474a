"""Redis Cluster going down and coming back under a running beat.

The nodes are stopped and started again (no persistence: the data is lost,
the cluster config kept); while they rejoin, commands get CLUSTERDOWN or find
no node at all.  Beat must tick through it (warn, back off) and send again.
Starting while the cluster is down is tested by the integration suite
(``test_redis_down_is_survived[cluster-down-at-start]``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from redbeat.schedulers import RedBeatScheduler
from tests.backends import Backend, backend_app, started
from tests.redis_server import RedisServer
from tests.topology.servers import ClusterNodes

pytestmark = pytest.mark.topology


def test_beat_ticks_through_a_cluster_restart(
    tmp_path: Path,
    redis_server: RedisServer,
    redis_url: str,
    make_scheduler: Callable[..., RedBeatScheduler],
    sent: Callable[[], list[dict[str, Any]]],
) -> None:
    nodes = started(ClusterNodes(tmp_path / 'cluster'))
    try:
        settings = {
            'redbeat_redis_url': nodes.url,
            'redbeat_redis_options': {'socket_timeout': 1, 'socket_connect_timeout': 1},
        }
        app = backend_app(Backend('cluster', settings, None), redis_server.url_for(1))  # fmt: skip
        app.conf.beat_schedule = {'every': {'task': 'proj.tasks.every', 'schedule': 1.0}}
        scheduler = make_scheduler(app)
        deadline = time.monotonic() + 10
        while not sent() and time.monotonic() < deadline:
            time.sleep(min(scheduler.tick(), 0.2))
        assert sent(), 'beat sent nothing before the restart'

        nodes.stop()
        for node in nodes.nodes:  # processes up; the cluster is not yet agreed
            node.start()
        restarted, before = time.time(), len(sent())
        deadline = time.monotonic() + 30
        while len(sent()) == before and time.monotonic() < deadline:
            time.sleep(min(scheduler.tick(), 0.5))  # must not raise (CLUSTERDOWN, no node)
        assert len(sent()) > before, f'nothing sent within 30 s of the restart at {restarted}'
        assert scheduler.leader.held
    finally:
        nodes.stop()
