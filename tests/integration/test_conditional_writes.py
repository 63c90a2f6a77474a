"""The write protocol's scripts on every backend (Redis, Cluster, Valkey).

``tests/api/test_write_protocol.py`` races clients and beat on plain Redis;
these check that the conditional writes (``save.lua``'s read condition,
``finish.lua``, ``delete.lua``, ``state.lua``) do the same where keys are
derived inside scripts from a hash-tagged prefix.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from celery import Celery

from redbeat.api import EntryInfo, Schedule
from redbeat.errors import EntryNotFound
from redbeat.keys import Keys
from redbeat.schedulers import RedBeatScheduler

UTC = timezone.utc
Make = Callable[..., RedBeatScheduler]


@pytest.fixture
def api(celery_app: Celery) -> Schedule:
    celery_app.conf.redbeat_lock_key = None  # every tick dispatches
    return Schedule(celery_app)


def one_off(api: Schedule, name: str, on_finish: str) -> None:
    at = (datetime.now(UTC) - timedelta(seconds=5)).replace(microsecond=0)
    entry = api.once_entry(name, 'proj.tasks.job', at, args=[0], history=3,
                           on_finish=on_finish, now=at - timedelta(seconds=1))  # fmt: skip
    entry.last_run_at = at - timedelta(seconds=60)
    api.save([entry])


def test_finish_actions_yield_to_an_edit_and_to_a_delete(
    api: Schedule, celery_app: Celery, make_scheduler: Make, redis_client: Any, keys: Keys
) -> None:
    one_off(api, 'edited', 'disable')
    one_off(api, 'deleted', 'disable')
    one_off(api, 'self-deleting', 'delete')
    scheduler = make_scheduler(celery_app)
    scheduler.tick()  # all three sent; their finish actions are queued
    api.edit('edited', args=['mine'])
    api.remove('deleted')
    scheduler.tick()
    scheduler.close()

    edited = api.get('edited')
    assert (edited.args, edited.enabled, edited.total_run_count) == (['mine'], True, 1)
    assert edited.history is not None and [d.outcome for d in edited.history] == ['sent']
    for gone in ('deleted', 'self-deleting'):
        assert not redis_client.exists(keys.entry(gone), keys.history(gone))
        assert redis_client.zscore(keys.schedule, keys.entry(gone)) is None


def test_update_and_delete_touch_only_what_they_read(
    api: Schedule, redis_client: Any, keys: Keys
) -> None:
    api.add('e', 'proj.tasks.job', 60, args=[1])
    calls = []

    def change(info: EntryInfo) -> Any:
        calls.append(info.args)
        if len(calls) == 1:  # another writer changes it between the read and the write
            text = redis_client.hget(keys.entry('e'), 'definition')
            redis_client.hset(keys.entry('e'), 'definition', text.replace('[1]', '[2]'))
        return api.entry('e', 'proj.tasks.job', 60, args=[*info.args, 3], enabled=False)

    api.update('e', change)
    assert calls == [[1], [2]] and api.get('e').args == [2, 3]

    redis_client.hset(keys.prefix + 'other', 'name', 'not an entry')
    assert api.delete_each(['e', 'other', 'missing']) == [True, False, False]
    assert redis_client.hgetall(keys.prefix + 'other') == {'name': 'not an entry'}
    with pytest.raises(EntryNotFound):
        api.disable('e')
    assert not redis_client.exists(keys.entry('e'))
