"""End to end: no acknowledged write is lost to a live ``celery beat`` or another client.

The ``live`` worker and beat of ``tests/e2e/conftest.py`` run the schedule;
clients in this process (threads, each with its own connection) change
entries while beat claims and finishes them.  Every wait is bounded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import redis

from redbeat.api import Schedule
from redbeat.codec import decode_definition, decode_meta
from tests.e2e.conftest import Live
from tests.e2e.harness import TASK
from tests.procs import wait_for

pytestmark = pytest.mark.e2e
UTC = timezone.utc


def definition(client: redis.Redis, name: str) -> dict[str, Any] | None:
    text = client.hget(f'redbeat:{name}', 'definition')
    return None if text is None else decode_definition(name, str(text))  # defaults filled


def runs(client: redis.Redis, name: str) -> int:
    text = client.hget(f'redbeat:{name}', 'meta')
    return decode_meta(name, None if text is None else str(text))[1]


def one_off(api: Schedule, name: str, on_finish: str) -> None:
    """A one-off whose time has come: the live beat sends it at once."""
    at = (datetime.now(UTC) - timedelta(seconds=5)).replace(microsecond=0)
    entry = api.once_entry(name, TASK, at, args=[name], on_finish=on_finish,
                           history=2, now=at - timedelta(seconds=1))  # fmt: skip
    entry.last_run_at = at - timedelta(seconds=60)
    api.save([entry])


def test_edits_and_flapping_against_a_live_beat_keep_every_acknowledged_write(
    live: Live,
) -> None:
    url = live.server.url_for(0)
    editor, flapper = Schedule.from_url(url), Schedule.from_url(url)
    Schedule(live.app).add('flap-e2e', TASK, 0.2, args=[-1])
    client = live.server.client(decode_responses=True)
    rounds, lost, errors = 200, [], []
    start, done = threading.Barrier(3, timeout=20), threading.Barrier(3, timeout=20)

    def client_loop(op: Callable[[int], Any]) -> None:
        try:
            for i in range(rounds):
                start.wait()
                op(i)
                done.wait()
        except BaseException as exc:
            errors.append(exc)
            start.abort()
            done.abort()

    threads = [
        threading.Thread(target=client_loop, args=(lambda i: editor.edit('flap-e2e', args=[i]),)),
        threading.Thread(
            target=client_loop, args=(lambda i: flapper.set_enabled('flap-e2e', i % 2 == 1),)
        ),
    ]
    for thread in threads:
        thread.start()
    try:
        for i in range(rounds):
            start.wait()
            done.wait()
            stored = definition(client, 'flap-e2e')
            assert stored is not None
            if (stored['args'], stored['enabled']) != ([i], i % 2 == 1):
                lost.append((i, stored['args'], stored['enabled']))
    finally:
        for thread in threads:
            thread.join(20)
    assert errors == [] and lost == []
    assert runs(client, 'flap-e2e') > 0  # beat claimed it meanwhile


def test_one_offs_edited_or_deleted_right_after_their_run_by_a_live_beat(live: Live) -> None:
    """Each round: two one-offs run; one is edited and one deleted the moment their
    run shows; a third (the probe) runs after that, and once beat has disabled the
    probe, it has written the first two's finish actions too."""
    api, user = Schedule(live.app), Schedule.from_url(live.server.url_for(0))
    client = live.server.client(decode_responses=True)

    def has_run(name: str) -> Callable[[], bool]:
        return lambda: runs(client, name) == 1 or not client.exists(f'redbeat:{name}')

    for i in range(30):
        edited, deleted, probe = f'ed-{i}', f'del-{i}', f'probe-{i}'
        one_off(api, edited, 'disable')
        one_off(api, deleted, 'delete' if i % 2 else 'disable')
        wait_for(has_run(edited), 10, interval=0.002, message=f'{edited} ran')
        user.edit(edited, args=['mine'])
        wait_for(has_run(deleted), 10, interval=0.002, message=f'{deleted} ran')
        user.remove(deleted)
        one_off(api, probe, 'disable')
        wait_for(lambda p=probe: (definition(client, p) or {}).get('enabled') is False, 10,
                 message=f'{probe} finished')  # fmt: skip

        stored = definition(client, edited)
        assert stored is not None and stored['args'] == ['mine'], (i, stored)
        assert client.keys(f'redbeat:{deleted}') == []
        assert client.keys(f'redbeat::history:{deleted}') == []
