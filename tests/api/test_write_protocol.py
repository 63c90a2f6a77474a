"""The write protocol: no acknowledged write is lost, a deleted entry stays deleted.

Every read-modify-write (enable, disable, edit) writes only over what it read,
and beat's own bookkeeping (finish actions, history, run state) never
overwrites an edit nor re-creates a deleted hash.  The deterministic tests
make the conflict happen at a chosen point; the race tests run real
concurrent clients (threads with their own connections) and a ticking beat
against the test Redis, hundreds of rounds, bounded in time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import redis
from celery import Celery

from redbeat import RedBeatSchedulerEntry
from redbeat.api import UPDATE_ATTEMPTS, EntryInfo, Schedule
from redbeat.codec import decode_definition, decode_meta, encode_meta
from redbeat.errors import EntryNotFound, WriteConflict
from redbeat.schedulers import RedBeatScheduler
from redbeat.store import Claim, ScheduleStore

UTC = timezone.utc
SCHEDULE = 'redbeat::schedule'
Make = Callable[..., RedBeatScheduler]


@pytest.fixture
def app(celery_app: Celery) -> Celery:
    """The test app without the leader lock: every tick dispatches."""
    celery_app.conf.redbeat_lock_key = None
    return celery_app


@pytest.fixture
def api(app: Celery) -> Schedule:
    return Schedule(app)


def stored(client: redis.Redis, name: str) -> dict[str, Any] | None:
    """The stored definition's fields, as beat reads them (defaults of left-out fields filled)."""
    text = client.hget(f'redbeat:{name}', 'definition')
    return None if text is None else decode_definition(name, str(text))


def run_count(client: redis.Redis, name: str) -> int:
    text = client.hget(f'redbeat:{name}', 'meta')
    return decode_meta(name, None if text is None else str(text))[1]


def one_off(api: Schedule, name: str, on_finish: str = 'disable') -> None:
    """A one-off entry whose time came a few seconds ago: the next tick sends it."""
    at = (datetime.now(UTC) - timedelta(seconds=5)).replace(microsecond=0)
    entry = api.once_entry(name, f'proj.tasks.{name}', at, args=[0], history=3,
                           on_finish=on_finish, now=at - timedelta(seconds=1))  # fmt: skip
    entry.last_run_at = at - timedelta(seconds=60)  # saved a minute before its time
    api.save([entry])


# --- read-modify-write: conditional, retried, never re-creating ------------------


def test_update_writes_over_what_it_read_and_retries_on_a_change(
    api: Schedule, redis_client: redis.Redis
) -> None:
    api.add('e', 'proj.tasks.e', 60, args=[1])
    calls: list[list[Any]] = []

    def change(info: EntryInfo) -> RedBeatSchedulerEntry:
        calls.append(list(info.args))
        if len(calls) == 1:  # another writer, keeping no version (a 2.x beat, redis-cli)
            text = str(redis_client.hget('redbeat:e', 'definition'))
            redis_client.hset('redbeat:e', 'definition', text.replace('[1]', '[2]'))
        return api.entry('e', 'proj.tasks.e', 60, args=[*info.args, 'x'], enabled=info.enabled)

    api.update('e', change)

    assert calls == [[1], [2]]  # read again after the conflict, the change applied again
    definition = stored(redis_client, 'e')
    assert definition is not None and definition['args'] == [2, 'x']


def test_update_gives_up_naming_the_entry_and_writes_nothing(
    api: Schedule, redis_client: redis.Redis
) -> None:
    api.add('busy', 'proj.tasks.busy', 60, args=[0])
    attempts = []

    def change(info: EntryInfo) -> RedBeatSchedulerEntry:
        attempts.append(info.args[0])
        redis_client.hset('redbeat:busy', 'meta', encode_meta(datetime.now(UTC), len(attempts)))
        return api.entry('busy', 'proj.tasks.busy', 60, args=['mine'])

    with pytest.raises(WriteConflict, match='redbeat:busy: changed by another writer'):
        api.update('busy', change)

    assert len(attempts) == UPDATE_ATTEMPTS
    definition = stored(redis_client, 'busy')
    assert definition is not None and definition['args'] == [0]


def test_an_entry_deleted_during_an_update_stays_deleted(
    api: Schedule, redis_client: redis.Redis
) -> None:
    api.add('gone', 'proj.tasks.gone', 60)

    def change(info: EntryInfo) -> RedBeatSchedulerEntry:
        api.remove('gone')
        return api.entry('gone', 'proj.tasks.gone', 60, enabled=False)

    with pytest.raises(EntryNotFound):
        api.update('gone', change)
    with pytest.raises(EntryNotFound):
        api.disable('gone')
    assert redis_client.keys('redbeat:gone*') == []
    assert redis_client.zscore(SCHEDULE, 'redbeat:gone') is None


def test_edit_changes_only_the_given_fields(api: Schedule, redis_client: redis.Redis) -> None:
    api.add('e', 'proj.tasks.e', 60, args=[1], kwargs={'k': 1}, jitter=5)
    api.disable('e')
    edited = api.edit('e', args=[2], history=4)
    assert (edited.args, edited.kwargs, edited.enabled) == ([2], {'k': 1}, False)
    assert (edited.policy.jitter, edited.policy.history) == (5, 4)
    assert redis_client.zscore(SCHEDULE, 'redbeat:e') == -1


def test_a_blind_save_racing_a_delete_does_not_bring_back_its_run_state(
    api: Schedule, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """save() is last-writer-wins; if the entry is deleted between the save's read of
    its run state and its write, it is saved as new, not with the deleted run state."""
    api.add('e', 'proj.tasks.e', 60)
    redis_client.hset('redbeat:e', 'meta', encode_meta(datetime(2020, 1, 1, tzinfo=UTC), 41))
    fetch = ScheduleStore.fetch

    def fetch_then_delete(self: ScheduleStore, keys: Any) -> Any:
        rows = fetch(self, keys)
        if redis_client.exists('redbeat:e'):
            self.delete(['e'])  # after the read, before the write
        return rows

    monkeypatch.setattr(ScheduleStore, 'fetch', fetch_then_delete)
    api.add('e', 'proj.tasks.e', 60, args=['new'])

    assert run_count(redis_client, 'e') == 0
    definition = stored(redis_client, 'e')
    assert definition is not None and definition['args'] == ['new']


# --- beat's own writes ------------------------------------------------------------


def test_an_edit_after_the_last_run_wins_over_the_finish_action(
    api: Schedule, redis_client: redis.Redis, make_scheduler: Make, app: Celery
) -> None:
    one_off(api, 'launch')
    scheduler = make_scheduler(app)
    scheduler.tick()  # sent; the finish action (disable) goes with the next round trip
    assert run_count(redis_client, 'launch') == 1
    api.edit('launch', args=['edited'])
    scheduler.tick()
    scheduler.tick()

    definition = stored(redis_client, 'launch')
    assert definition is not None
    assert (definition['args'], definition['enabled']) == (['edited'], True)


@pytest.mark.parametrize('on_finish', ['disable', 'delete'])
def test_a_delete_after_the_last_run_stays_deleted(
    api: Schedule, redis_client: redis.Redis, make_scheduler: Make, app: Celery, on_finish: str
) -> None:
    one_off(api, 'launch', on_finish)
    scheduler = make_scheduler(app)
    scheduler.tick()  # sent; history and finish action are queued
    assert run_count(redis_client, 'launch') == 1
    api.remove('launch')
    scheduler.tick()
    scheduler.close()  # would write anything still queued

    assert redis_client.keys('redbeat:launch*') == []
    assert redis_client.keys('redbeat::history:*') == []
    assert redis_client.zscore(SCHEDULE, 'redbeat:launch') is None


def test_a_claim_does_not_recreate_a_hash_deleted_by_hand(
    api: Schedule, redis_client: redis.Redis
) -> None:
    """``DEL`` without ``ZREM`` (redis-cli): the member stays, the hash must not come back."""
    api.add('e', 'proj.tasks.e', 60)
    redis_client.zadd(SCHEDULE, {'redbeat:e': 0})
    redis_client.delete('redbeat:e')
    meta = encode_meta(datetime.now(UTC), 1)

    claim = Claim('redbeat:e', 'redbeat:e', '0', 99.0, meta, missed=1, skipped=1)
    (flag,) = api.store.claim([claim], None, None).flags

    assert flag  # the score moved (the member is still there: beat reports it)
    assert not redis_client.exists('redbeat:e')


# --- races with real concurrent clients and a running beat ------------------------


@pytest.fixture
def ticking(app: Celery, make_scheduler: Make) -> Iterator[Callable[[], int]]:
    """A beat ticking in a thread all the test long; call it for the ticks done so far."""
    scheduler = make_scheduler(app)
    stop = threading.Event()
    ticks = [0]
    errors: list[BaseException] = []

    def loop() -> None:
        try:
            while not stop.is_set():
                scheduler.tick()
                ticks[0] += 1
                stop.wait(0.001)
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield lambda: ticks[0]
    stop.set()
    thread.join(10)
    assert not thread.is_alive() and errors == []


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f'timed out waiting for {what}'
        time.sleep(0.001)


ROUNDS = 300


def test_concurrent_edits_and_enable_flapping_keep_every_acknowledged_write(
    app: Celery, redis_url: str, redis_client: redis.Redis, ticking: Callable[[], int]
) -> None:
    """Each round one client edits the args while another flips enabled, at the same
    moment, while beat claims the entry every 0.1 s; both writes must be there."""
    Schedule(app).add('flap', 'proj.tasks.flap', 0.1, args=[-1])
    editor, flapper = Schedule.from_url(redis_url), Schedule.from_url(redis_url)
    start, done = threading.Barrier(3, timeout=10), threading.Barrier(3, timeout=10)
    errors: list[BaseException] = []

    def client(op: Callable[[int], Any]) -> None:
        try:
            for i in range(ROUNDS):
                start.wait()
                op(i)
                done.wait()
        except BaseException as exc:
            errors.append(exc)
            start.abort()
            done.abort()

    threads = [
        threading.Thread(target=client, args=(lambda i: editor.edit('flap', args=[i]),)),
        threading.Thread(target=client, args=(lambda i: flapper.set_enabled('flap', i % 2 == 1),)),
    ]
    for thread in threads:
        thread.start()
    lost = []
    try:
        for i in range(ROUNDS):
            start.wait()
            done.wait()
            definition = stored(redis_client, 'flap')
            assert definition is not None
            if (definition['args'], definition['enabled']) != ([i], i % 2 == 1):
                lost.append((i, definition['args'], definition['enabled']))
    finally:
        for thread in threads:
            thread.join(10)
    assert errors == []
    assert lost == []
    assert ticking() > 0
    assert run_count(redis_client, 'flap') > 0  # beat did claim it meanwhile


ONE_OFFS = 100


def test_beat_finishing_one_offs_never_overwrites_an_edit_nor_brings_back_a_delete(
    app: Celery, redis_url: str, redis_client: redis.Redis, ticking: Callable[[], int]
) -> None:
    """One-offs run by a live beat, each edited or deleted the moment its run shows."""
    api, user = Schedule(app), Schedule.from_url(redis_url)

    def has_run(name: str) -> Callable[[], bool]:
        return lambda: (
            run_count(redis_client, name) == 1 or not redis_client.exists(f'redbeat:{name}')
        )  # a one-off that deletes itself may be gone already

    for i in range(ONE_OFFS):
        edited, deleted = f'edited-{i}', f'deleted-{i}'
        one_off(api, edited, 'disable')
        one_off(api, deleted, 'disable' if i % 2 else 'delete')
        wait_for(has_run(edited), f'{edited} to run')
        user.edit(edited, args=['mine'])
        wait_for(has_run(deleted), f'{deleted} to run')
        user.remove(deleted)
        after = ticking() + 2
        wait_for(lambda after=after: ticking() >= after, 'two more ticks')  # finish writes in

        definition = stored(redis_client, edited)
        assert definition is not None and definition['args'] == ['mine'], (i, definition)
        assert redis_client.keys(f'redbeat:{deleted}') == []
        assert redis_client.keys(f'redbeat::history:{deleted}') == []


def test_reschedule_does_not_recreate_a_deleted_entry(
    api: Schedule, redis_client: redis.Redis
) -> None:
    entry = api.add('e', 'proj.tasks.e', 60)
    api.remove('e')
    with pytest.raises(EntryNotFound):
        entry.reschedule()
    assert redis_client.keys('redbeat:e*') == []
    assert redis_client.zscore(SCHEDULE, 'redbeat:e') is None
