"""The store's contract, run against each backend (Redis, Cluster, Valkey).

Every method of :class:`~redbeat.store.ScheduleStore` that others build on
behaves the same whatever the server: script calls survive a server that
lost its scripts (one dispatcher reloads them), change notices are published
from the scripts (a cluster pipeline refuses PUBLISH), and the management
reads (inspect, one entry, unscheduled hashes, the status overview) take the
round trips their docstrings say.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from celery import Celery

import redbeat.store
from redbeat.api import Schedule
from redbeat.keys import Keys
from redbeat.store import SaveItem, ScheduleStore
from tests.backends import Backend
from tests.integration.test_round_trips import counted_round_trips

DEFINITION = json.dumps(
    {'name': 'job', 'task': 'proj.tasks.job', 'schedule': {'__type__': 'interval', 'every': 60}}
)


@pytest.fixture
def store(celery_app: Celery) -> ScheduleStore:
    return Schedule(celery_app).store


def _flush_scripts(backend: Backend) -> None:
    """Every server forgets its scripts, as after a restart."""
    for node in backend.nodes or [backend.client]:
        node.script_flush()


def _save(store: ScheduleStore, name: str, score: float = 100.0) -> None:
    item = SaveItem(name, DEFINITION.replace('"job"', json.dumps(name)), None, None, score)
    assert store.save([item]) == [1]


class TestStoreContract:
    def test_a_single_script_call_reloads_scripts_the_server_lost(
        self, store: ScheduleStore, backend: Backend, keys: Keys, redis_client: Any
    ) -> None:
        _save(store, 'job')
        _flush_scripts(backend)

        assert store.set_state(keys.entry('job'), None, 42.0) is True
        assert redis_client.zscore(keys.schedule, keys.entry('job')) == 42.0

    def test_a_pipeline_of_script_calls_runs_again_when_scripts_were_lost(
        self,
        store: ScheduleStore,
        backend: Backend,
        keys: Keys,
        redis_client: Any,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        _flush_scripts(backend)
        items = [
            SaveItem(n, DEFINITION.replace('"job"', json.dumps(n)), None, None, 5.0)
            for n in ('a', 'b')
        ]
        monkeypatch.setattr(redbeat.store, 'SAVE_CHUNK', 1)  # two save.lua calls: a pipeline
        assert store.save(items) == [1, 1]
        _flush_scripts(backend)

        due, following = store.due(10.0, 10, peek=True)

        assert [d.member for d in due] == [keys.entry('a'), keys.entry('b')]
        assert following is None
        assert redis_client.zcard(keys.schedule) == 2

    def test_prune_and_rollback_go_through_the_dispatcher(
        self, store: ScheduleStore, backend: Backend, keys: Keys, redis_client: Any
    ) -> None:
        _save(store, 'kept')
        redis_client.zadd(keys.schedule, {keys.entry('ghost'): 1.0})
        _flush_scripts(backend)

        assert store.prune_members([keys.entry('ghost'), keys.entry('kept')]) == 1
        assert redis_client.zrange(keys.schedule, 0, -1) == [keys.entry('kept')]

    def test_saves_and_deletes_publish_a_change_notice(
        self, store: ScheduleStore, keys: Keys
    ) -> None:
        changes = store.listen()
        try:
            _save(store, 'job')
            assert store.delete_each(['job', 'never']) == [True, False]
            notices = []
            for _ in range(50):  # bounded: both notices come within a few polls
                message = changes.get_message(timeout=0.1)
                if message is not None:
                    notices.append(message['channel'])
                if len(notices) == 2:
                    break
        finally:
            changes.close()
        assert notices == [keys.changes, keys.changes]

    def test_inspect_tells_a_missing_hash_from_one_without_a_definition(
        self, store: ScheduleStore, keys: Keys, redis_client: Any
    ) -> None:
        _save(store, 'job')
        redis_client.hset(keys.entry('job'), mapping={'missed': '3', 'skipped': 'x'})
        redis_client.hset(keys.entry('bare'), 'meta', '{}')

        job, bare, gone = store.inspect([keys.entry(n) for n in ('job', 'bare', 'gone')])

        assert (job.exists, job.row.definition is not None, job.missed, job.skipped) == (
            True, True, 3, 0,
        )  # fmt: skip
        assert (bare.exists, bare.row.definition) == (True, None)
        assert (gone.exists, gone.row.definition) == (False, None)

    def test_one_entry_its_score_and_history_in_one_round_trip(
        self, store: ScheduleStore, keys: Keys, redis_client: Any
    ) -> None:
        _save(store, 'job', score=77.0)
        redis_client.lpush(keys.history('job'), '{"n": 1}', '{"n": 2}')
        redis_client.zadd(keys.schedule, {'bare': 5.0})  # a member under the bare name
        redis_client.hset(keys.entry('bare'), 'definition', DEFINITION)
        store.count()  # a connection is open

        with counted_round_trips(store.client) as trips:
            read, score, history = store.entry('job', 1)
        bare = store.entry('bare', None)

        assert trips[0] == 1
        assert (read.exists, score, history) == (True, 77.0, ['{"n": 2}'])
        assert bare[1:] == (5.0, None)

    def test_unscheduled_finds_hashes_without_a_member_under_either_form(
        self, store: ScheduleStore, keys: Keys, redis_client: Any
    ) -> None:
        _save(store, 'scheduled')
        for name in ('orphan', 'bare', 'other'):
            redis_client.hset(keys.entry(name), 'definition', DEFINITION)
        redis_client.zadd(keys.schedule, {'bare': 5.0})

        found = [k for batch in store.unscheduled(lambda k: not k.endswith('other')) for k in batch]

        assert found == [keys.entry('orphan')]

    def test_overview_counts(self, store: ScheduleStore, keys: Keys, redis_client: Any) -> None:
        for name, score in (('due', 10.0), ('late', 1.0), ('later', 500.0)):
            _save(store, name, score)
        redis_client.zadd(keys.schedule, {keys.entry('later'): 500.0})

        status = store.overview(None, now=100.0, overdue_before=5.0, upcoming=2, memory=True)

        assert (status.entries, status.due, status.overdue) == (3, 2, 1)
        assert status.upcoming == [(keys.entry('late'), 1.0), (keys.entry('due'), 10.0)]
        assert status.maxmemory_policy == 'noeviction'
