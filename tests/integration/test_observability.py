"""Metrics, events and the heartbeat of a real scheduler against a real Redis.

Metrics are read the way Prometheus reads them: an HTTP GET of ``/metrics``
on the port beat serves (127.0.0.1, a free port), parsed with
prometheus_client's own text parser.  Events are read from the stream.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from celery.schedules import schedule
from kombu.exceptions import OperationalError
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from redbeat import RedBeatSchedulerEntry
from redbeat.codec import encode_meta
from redbeat.errors import ConfigurationError
from redbeat.keys import Keys
from redbeat.metrics import Observer, Watcher
from redbeat.schedulers import REDIS_ERRORS, RedBeatScheduler
from redbeat.timing import to_score
from tests.backends import PrivateServer, started
from tests.integration.test_round_trips import counted_round_trips
from tests.redis_server import RedisServer

Make = Callable[..., RedBeatScheduler]
REPO_ROOT = Path(__file__).resolve().parents[2]
UTC = timezone.utc


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return int(sock.getsockname()[1])


def serve_metrics(app: Celery, **settings: Any) -> int:
    """Turn metrics on for schedulers made from ``app`` from now on; returns the port."""
    port = free_port()
    app.conf.update(redbeat_metrics=port, redbeat_metrics_address='127.0.0.1', **settings)
    return port


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``/metrics`` as Prometheus reads it: (sample name, sorted labels) -> value."""
    with urllib.request.urlopen(f'http://127.0.0.1:{port}/metrics', timeout=10) as reply:
        text = reply.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: dict[Any, float], name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def definition(name: str, task: str) -> str:
    return json.dumps({
        'name': name, 'task': task,
        'schedule': {'__type__': 'interval', 'every': 60, 'relative': False},
        'args': [], 'kwargs': {}, 'options': {}, 'enabled': True,
    })  # fmt: skip


def put_due(client: Any, keys: Keys, name: str, task: str = 'proj.tasks.job') -> None:
    client.hset(keys.entry(name), 'definition', definition(name, task))
    client.zadd(keys.schedule, {keys.entry(name): 0})


def put_unreadable(client: Any, keys: Keys, name: str = 'broken') -> None:
    client.hset(keys.entry(name), 'definition', '{not json')
    client.zadd(keys.schedule, {keys.entry(name): 0})


def down_entry(app: Celery, client: Any, keys: Keys, name: str, policy: dict[str, Any]) -> None:
    """An entry every 300 s whose last run was 1000 s ago: occurrences +300, +600, +900 due."""
    last = datetime.now(UTC) - timedelta(seconds=1000)
    entry = RedBeatSchedulerEntry(name, f'proj.tasks.{name}', schedule(timedelta(seconds=300)),
                                  app=app, policy=policy)  # fmt: skip
    entry.save()
    client.hset(keys.entry(name), 'meta', encode_meta(last, 0))
    client.zadd(keys.schedule, {keys.entry(name): to_score(last + timedelta(seconds=300))})


def events(client: Any, keys: Keys) -> list[dict[str, str]]:
    """The events stream, oldest first."""
    return [fields for _, fields in client.xrange(keys.events)]


def test_scraped_metrics_after_a_tick(
    keys: Keys, celery_app: Celery, redis_client: Any, make_scheduler: Make
) -> None:
    port = serve_metrics(celery_app)
    for i in range(3):
        put_due(redis_client, keys, f'job{i}')
    put_due(redis_client, keys, 'other', 'proj.tasks.other')
    put_unreadable(redis_client, keys)
    scheduler = make_scheduler(celery_app)
    before = time.time()

    scheduler.tick()

    m = scrape(port)
    assert value(m, 'redbeat_occurrences_sent_total', task='proj.tasks.job') == 3
    assert value(m, 'redbeat_occurrences_sent_total', task='proj.tasks.other') == 1
    assert value(m, 'redbeat_send_lateness_seconds_count') == 4
    # due "now" by hand (score 0): each was due at its run state's occurrence, before the send
    assert value(m, 'redbeat_send_lateness_seconds_sum') is not None
    assert value(m, 'redbeat_tick_duration_seconds_count') == 1
    assert value(m, 'redbeat_tick_due_entries_sum') == 5  # the unreadable one too
    assert value(m, 'redbeat_leader') == 1
    assert value(m, 'redbeat_lock_acquisitions_total') == 1
    assert value(m, 'redbeat_lock_losses_total') == 0
    assert value(m, 'redbeat_entries') == redis_client.zcard(keys.schedule)  # + celery's own
    assert value(m, 'redbeat_entries_enabled') == redis_client.zcount(keys.schedule, 0, '+inf')
    redis_client.zadd(keys.schedule, {keys.entry('job0'): -1})  # as a disabled entry is stored
    scheduler.observer.census(*scheduler.store.census(), time.time())
    m = scrape(port)
    enabled = value(m, 'redbeat_entries_enabled')
    assert enabled is not None and value(m, 'redbeat_entries') == enabled + 1
    assert value(m, 'redbeat_entries_parked') == 1
    assert (value(m, 'redbeat_last_tick_timestamp_seconds') or 0) >= before
    assert not [k for k in m if k[0] == 'redbeat_redis_errors_total']

    scheduler.tick()  # nothing due: an idle tick is counted, the parked entry stays parked
    m = scrape(port)
    assert value(m, 'redbeat_tick_duration_seconds_count') == 2
    assert value(m, 'redbeat_tick_due_entries_count') == 1  # idle ticks are not observed
    assert value(m, 'redbeat_entries_parked') == 1


def test_parked_entry_leaves_the_gauge_once_readable(
    keys: Keys, celery_app: Celery, redis_client: Any, make_scheduler: Make
) -> None:
    port = serve_metrics(celery_app)
    put_unreadable(redis_client, keys)
    scheduler = make_scheduler(celery_app)
    scheduler.tick()
    assert value(scrape(port), 'redbeat_entries_parked') == 1

    put_due(redis_client, keys, 'broken')  # fixed by hand, due again
    scheduler.tick()
    scheduler.observer.census(1, 1, time.time())  # the next count of entries
    m = scrape(port)
    assert value(m, 'redbeat_entries_parked') == 0
    assert value(m, 'redbeat_occurrences_sent_total', task='proj.tasks.job') == 1


def test_parked_entry_deleted_leaves_the_gauge_after_two_retry_periods(
    keys: Keys, celery_app: Celery, redis_client: Any, make_scheduler: Make
) -> None:
    port = serve_metrics(celery_app)  # beat_max_loop_interval: 5 s (tests/conftest.py)
    put_unreadable(redis_client, keys)
    scheduler = make_scheduler(celery_app)
    scheduler.tick()
    redis_client.delete(keys.entry('broken'))
    redis_client.zrem(keys.schedule, keys.entry('broken'))  # never looked at again
    scheduler.observer.census(0, 0, time.time() + 9)  # counts taken within two periods ...
    assert value(scrape(port), 'redbeat_entries_parked') == 1
    scheduler.observer.census(0, 0, time.time() + 11)  # ... and after
    assert value(scrape(port), 'redbeat_entries_parked') == 0


def test_missed_and_skipped_by_task_and_per_entry_on_request(
    keys: Keys, celery_app: Celery, redis_client: Any, make_scheduler: Make
) -> None:
    celery_app.conf.redbeat_lock_key = None
    port = serve_metrics(celery_app, redbeat_metrics_per_entry=True)
    down_entry(celery_app, redis_client, keys, 'late', {'missed': 'all', 'catchup_window': 500})
    down_entry(celery_app, redis_client, keys, 'once', {'missed': 'once'})
    scheduler = make_scheduler(celery_app)

    scheduler.tick()

    m = scrape(port)
    late = {'task': 'proj.tasks.late', 'entry': 'late'}
    once = {'task': 'proj.tasks.once', 'entry': 'once'}
    assert value(m, 'redbeat_occurrences_missed_total', **late) == 1  # +300 is past the window
    assert value(m, 'redbeat_occurrences_sent_total', **late) == 2
    assert value(m, 'redbeat_occurrences_skipped_total', **once) == 2  # only +900 is sent
    assert value(m, 'redbeat_occurrences_sent_total', **once) == 1
    # +900 (of both) was sent about 100 s late, +600 (of 'late') about 400 s
    assert value(m, 'redbeat_send_lateness_seconds_bucket', le='300.0') == 2
    assert value(m, 'redbeat_send_lateness_seconds_bucket', le='3600.0') == 3
    assert value(m, 'redbeat_leader') == 1  # no lock: every beat dispatches


@pytest.mark.parametrize(
    ('error', 'reason'),
    [(OperationalError('broker down'), 'broker_unavailable'), (ValueError('bad'), 'error')],
)
def test_failed_publish_is_counted_and_recorded_as_an_event(
    keys: Keys,
    celery_app: Celery,
    redis_client: Any,
    make_scheduler: Make,
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
    reason: str,
) -> None:
    port = serve_metrics(celery_app, redbeat_events=True)
    put_due(redis_client, keys, 'pub', 'proj.tasks.pub')
    scheduler = make_scheduler(celery_app)

    def failing(*args: Any, **kwargs: Any) -> Any:
        raise error

    monkeypatch.setattr(celery_app, 'send_task', failing)
    scheduler.tick()
    monkeypatch.undo()
    scheduler.tick()  # writes the queued events with its first round trip

    m = scrape(port)
    labels = {'task': 'proj.tasks.pub', 'reason': reason}
    assert value(m, 'redbeat_publish_failures_total', **labels) == 1
    failed = [e for e in events(redis_client, keys) if e['event'] == 'publish_failed']
    assert len(failed) == 1
    assert (failed[0]['entry'], failed[0]['task'], failed[0]['reason']) == ('pub', 'proj.tasks.pub',
                                                                             reason)  # fmt: skip
    # handed back: sent on the next tick; a broken message: skipped for good
    sent = value(m, 'redbeat_occurrences_sent_total', task='proj.tasks.pub')
    assert sent == (1 if reason == 'broker_unavailable' else None)


def test_lock_renewals_losses_and_leadership_events(
    keys: Keys, celery_app: Celery, redis_client: Any, make_scheduler: Make
) -> None:
    port = serve_metrics(celery_app, redbeat_events=True)
    first = make_scheduler(celery_app)
    celery_app.conf.redbeat_metrics = None  # the second beat serves no metrics (events: yes)
    second = make_scheduler(celery_app)
    first.tick()
    second.tick()  # standby
    clock = time.monotonic()
    assert first.leader.ensure(clock + first.leader.renew_every)  # a renewal
    m = scrape(port)
    assert (value(m, 'redbeat_leader'), value(m, 'redbeat_lock_renewals_total')) == (1, 1)

    redis_client.delete(keys.default_lock)  # the lock expired (say, a long pause) ...
    second.tick()  # ... and the standby took it
    # a whole renewal period after the last (not exactly one: float rounding)
    assert not first.leader.ensure(clock + 3 * first.leader.renew_every)
    first.tick()  # standby now: writes its leader_lost event

    m = scrape(port)
    assert value(m, 'redbeat_leader') == 0
    assert value(m, 'redbeat_lock_losses_total') == 1
    assert value(m, 'redbeat_lock_acquisitions_total') == 1
    kinds = [(e['event'], e['token']) for e in events(redis_client, keys)]
    assert kinds == [
        ('leader_gained', first.leader.token),
        ('leader_gained', second.leader.token),
        ('leader_lost', first.leader.token),
    ]
    lost = [e for e in events(redis_client, keys) if e['event'] == 'leader_lost']
    assert lost[0]['lock'] == keys.default_lock
    assert 'renewed' in lost[0]['reason']


def test_redis_errors_are_counted_by_class(
    celery_app: Celery, private: PrivateServer, make_scheduler: Make
) -> None:
    celery_app.conf.redbeat_redis_url = private.url
    celery_app.conf.redbeat_redis_options = {'socket_timeout': 1, 'socket_connect_timeout': 0.5}
    port = serve_metrics(celery_app)
    started(private)
    scheduler = make_scheduler(celery_app)
    scheduler.tick()
    private.stop()

    scheduler.tick()

    errors = {k: v for k, v in scrape(port).items() if k[0] == 'redbeat_redis_errors_total'}
    assert len(errors) == 1 and next(iter(errors.values())) == 1
    ((_, labels),) = errors
    assert labels[0][0] == 'error'
    assert labels[0][1] in {error.__name__ for error in REDIS_ERRORS}  # e.g. ConnectionError


def test_events_parked_once_missed_skipped_and_capped(
    keys: Keys, celery_app: Celery, redis_client: Any, make_scheduler: Make
) -> None:
    celery_app.conf.update(redbeat_lock_key=None, redbeat_events=True, redbeat_events_maxlen=1)
    put_unreadable(redis_client, keys)
    down_entry(celery_app, redis_client, keys, 'late', {'missed': 'all', 'catchup_window': 500})
    down_entry(celery_app, redis_client, keys, 'once', {'missed': 'once'})
    scheduler = make_scheduler(celery_app)
    scheduler.tick()
    scheduler.tick()  # events are written with the next round trip
    found = events(redis_client, keys)
    parked = [e for e in found if e['event'] == 'parked']
    assert parked[0]['entry'] == 'broken' and 'JSON' in parked[0]['reason']
    assert {(e['event'], e['entry'], e['count']) for e in found if 'count' in e} == {
        ('missed', 'late', '1'),
        ('skipped', 'once', '2'),
    }
    redis_client.zadd(keys.schedule, {keys.entry('broken'): 0})  # looked at again
    scheduler.tick()
    scheduler.tick()
    assert len([e for e in events(redis_client, keys) if e['event'] == 'parked']) == 1

    for i in range(300):  # far more events than the cap
        scheduler.observer.parked(f'redbeat:x{i}', 'test', 5.0)
    scheduler.tick()
    assert 1 <= redis_client.xlen(keys.events) < 300  # MAXLEN ~: trimmed by whole nodes


def test_off_by_default_no_observer_no_events_but_a_heartbeat(
    keys: Keys, celery_app: Celery, redis_client: Any, make_scheduler: Make
) -> None:
    put_unreadable(redis_client, keys)
    put_due(redis_client, keys, 'job')
    scheduler = make_scheduler(celery_app)
    assert type(scheduler.observer) is Observer  # the no-op one
    before = time.time()
    scheduler.tick()
    scheduler.tick()
    assert redis_client.exists(keys.events) == 0
    beat = json.loads(redis_client.get(keys.heartbeat))
    assert beat['beat'] == scheduler.leader.token and beat['at'] >= before
    assert 0 < redis_client.ttl(keys.heartbeat) <= 86_400


@pytest.mark.parametrize('observed', [False, True], ids=['off', 'metrics-and-events'])
@pytest.mark.parametrize('n', [0, 150])
def test_heartbeat_and_events_add_no_round_trip(
    keys: Keys,
    celery_app: Celery,
    redis_client: Any,
    make_scheduler: Make,
    observed: bool,
    n: int,
) -> None:
    celery_app.conf.redbeat_lock_key = None  # lock renewals are not part of the count
    if observed:
        serve_metrics(celery_app, redbeat_events=True)
    scheduler = make_scheduler(celery_app)
    scheduler.tick()  # start-up work and the first count of entries done
    for i in range(n):
        put_due(redis_client, keys, f'e{i}')
    put_unreadable(redis_client, keys)  # a parked event (when on) to write
    redis_client.delete(keys.heartbeat)
    scheduler._heartbeat_at = 0.0  # a heartbeat is due this tick

    with counted_round_trips(scheduler.store.client) as trips:
        scheduler.tick()

    # first chunk + peek (+ the heartbeat), claim it a group at a time (+ the parked
    # event), load the rest, claim it a group at a time (the last claim peeks)
    due, group, first = n + 1, scheduler.publish_group, scheduler.first_chunk
    if due < first:
        assert trips[0] == 1 + math.ceil(due / group)
    else:
        assert trips[0] == 2 + math.ceil(first / group) + math.ceil((due - first) / group)
    assert json.loads(redis_client.get(keys.heartbeat))['beat'] == scheduler.leader.token
    if observed:
        scheduler.tick()  # the parked event queued in the last claim goes with this one
        assert [e['event'] for e in events(redis_client, keys)] == ['parked']
        assert isinstance(scheduler.observer, Watcher)


def test_metrics_port_in_use_fails_at_start_naming_the_setting(
    celery_app: Celery, make_scheduler: Make
) -> None:
    port = serve_metrics(celery_app)
    with socket.socket() as taken:
        taken.bind(('127.0.0.1', port))
        taken.listen()
        wanted = r'redbeat_metrics: cannot serve metrics on 127\.0\.0\.1'
        with pytest.raises(ConfigurationError, match=wanted):
            make_scheduler(celery_app)


def test_standby_serves_leader_zero(
    keys: Keys, celery_app: Celery, redis_client: redis.Redis, make_scheduler: Make
) -> None:
    redis_client.set(keys.default_lock, 'another-beat')
    port = serve_metrics(celery_app)
    scheduler = make_scheduler(celery_app)
    scheduler.tick()
    m = scrape(port)
    assert value(m, 'redbeat_leader') == 0
    assert value(m, 'redbeat_tick_duration_seconds_count') == 0  # a standby does not tick


MULTIPROCESS_BEAT = """
import sys
from celery import Celery
from redbeat.schedulers import RedBeatScheduler
app = Celery('mp')
app.conf.update(redbeat_redis_url=sys.argv[1], broker_url=sys.argv[2], result_backend=None,
                redbeat_metrics='registry')
scheduler = RedBeatScheduler(app=app)
scheduler.listen_for_changes = False
scheduler.tick()
"""


def test_registry_mode_is_multiprocess_safe(
    redis_server: RedisServer, redis_url: str, tmp_path: Path
) -> None:
    """``redbeat_metrics = 'registry'`` in a process with PROMETHEUS_MULTIPROC_DIR: the
    metrics land in its files, where another process's MultiProcessCollector reads them."""
    with redis_server.client(decode_responses=True) as client:
        put_due(client, Keys(), 'job')
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(tmp_path), PYTHONPATH=str(REPO_ROOT))
    beat = subprocess.run(
        [sys.executable, '-c', MULTIPROCESS_BEAT, redis_url, redis_server.url_for(1)],
        env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert beat.returncode == 0, beat.stderr

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(tmp_path))
    text = generate_latest(registry).decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert value(samples, 'redbeat_occurrences_sent_total', task='proj.tasks.job') == 1
    assert value(samples, 'redbeat_leader') == 1
    assert value(samples, 'redbeat_tick_duration_seconds_count') == 1
