"""RedBeatSchedulerEntry against a real Redis: save, re-save, delete, load, reschedule."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis
from celery import Celery
from celery.schedules import crontab, schedule
from dateutil import rrule as du

import redbeat
import redbeat.schedulers
import redbeat.store
from redbeat import RedBeatSchedulerEntry, save_entries
from redbeat.codec import decode_meta, encode_meta
from redbeat.errors import DefinitionError, EntryNotFound
from redbeat.keys import Keys
from redbeat.schedules import rrule

UTC = timezone.utc
T0 = datetime(2026, 1, 1, 12, 0, 0, 250_000, tzinfo=UTC)


def every(seconds: float) -> schedule:
    return schedule(run_every=timedelta(seconds=seconds))


def entry(
    app: Celery, name: str = 'job', seconds: float = 60, **kwargs: object
) -> RedBeatSchedulerEntry:
    return RedBeatSchedulerEntry(name, 'proj.tasks.job', every(seconds), app=app, **kwargs)  # type: ignore[arg-type]


def test_same_class_from_both_modules() -> None:
    assert redbeat.schedulers.RedBeatSchedulerEntry is redbeat.RedBeatSchedulerEntry
    assert redbeat.RedisBeatScheduler is redbeat.RedBeatScheduler


def test_save_writes_definition_meta_and_a_future_score(
    keys: Keys, celery_app: Celery, redis_client: redis.Redis
) -> None:
    before = datetime.now(UTC)
    entry(celery_app, args=[1, 2], kwargs={'a': 'b'}, options={'queue': 'q'}).save()
    after = datetime.now(UTC)

    stored = redis_client.hgetall(keys.entry('job'))
    assert stored['definition'] == (  # compact: enabled (true) is left out
        '{"name":"job","task":"proj.tasks.job",'
        '"schedule":{"__type__":"interval","every":60,"relative":false},'
        '"args":[1,2],"kwargs":{"a":"b"},"options":{"queue":"q"}}'
    )
    assert set(json.loads(stored['meta'])) == {'last_run_at'}  # a run count of 0 is left out
    last_run_at, count = decode_meta(keys.entry('job'), stored['meta'])
    assert count == 0
    assert last_run_at is not None and before <= last_run_at <= after
    score = redis_client.zscore(keys.schedule, keys.entry('job'))
    # first occurrence after the save, computed from the stored run state
    assert score == pytest.approx(last_run_at.timestamp() + 60, abs=1e-6)
    # not due now: saving never fires at once (celery-redbeat #79 / #154)
    assert score > after.timestamp()
    assert redis_client.zrangebyscore(keys.schedule, 0, after.timestamp()) == []


def test_a_full_form_entry_saved_again_is_stored_compact_with_its_run_state(
    keys: Keys, celery_app: Celery, redis_client: redis.Redis
) -> None:
    # what celery-redbeat 2.x writes: every field, spaces, the UTC zone
    full = ('{"name": "job", "task": "proj.tasks.job", "args": [1], "kwargs": {}, "options": {}, '
            '"schedule": {"__type__": "interval", "every": 60.0, "relative": false}, '
            '"enabled": true}')  # fmt: skip
    meta = ('{"last_run_at": {"__type__": "datetime", "year": 2026, "month": 1, "day": 1, '
            '"hour": 12, "minute": 0, "second": 0, "microsecond": 250000, "timezone": "UTC"}, '
            '"total_run_count": 3}')  # fmt: skip
    redis_client.hset(keys.entry('job'), mapping={'definition': full, 'meta': meta})
    redis_client.zadd(keys.schedule, {keys.entry('job'): 0})

    RedBeatSchedulerEntry.from_key(keys.entry('job'), app=celery_app).save()

    assert redis_client.hget(keys.entry('job'), 'definition') == (
        '{"name":"job","task":"proj.tasks.job",'
        '"schedule":{"__type__":"interval","every":60,"relative":false},"args":[1]}'
    )
    assert redis_client.hget(keys.entry('job'), 'meta') == meta  # run state kept as it was
    score = redis_client.zscore(keys.schedule, keys.entry('job'))
    assert score == T0.timestamp() + 60  # due from its last run, as for any changed definition


def test_save_with_fixed_now_keeps_sub_second_score(
    keys: Keys, celery_app: Celery, redis_client: redis.Redis
) -> None:
    save_entries([entry(celery_app, seconds=0.5)], now=T0)
    score = redis_client.zscore(keys.schedule, keys.entry('job'))
    assert score == pytest.approx(T0.timestamp() + 0.5, abs=1e-6)
    assert score % 1 == pytest.approx(0.75, abs=1e-6)


def test_resave_with_changed_args_keeps_run_state_and_recomputes_score(
    keys: Keys, celery_app: Celery, redis_client: redis.Redis
) -> None:
    save_entries([entry(celery_app, args=[1])], now=T0)
    meta = redis_client.hget(keys.entry('job'), 'meta')
    redis_client.zadd(keys.schedule, {keys.entry('job'): 12345})  # scheduler moved it meanwhile

    later = T0 + timedelta(hours=5)
    save_entries([entry(celery_app, args=[2])], now=later)

    assert json.loads(redis_client.hget(keys.entry('job'), 'definition'))['args'] == [2]
    assert redis_client.hget(keys.entry('job'), 'meta') == meta
    # due time recomputed from the stored last run (T0), not from the save time
    assert redis_client.zscore(keys.schedule, keys.entry('job')) == pytest.approx(
        T0.timestamp() + 60, abs=1e-6
    )


def test_resave_with_changed_schedule_uses_new_interval(
    keys: Keys, celery_app: Celery, redis_client: redis.Redis
) -> None:
    save_entries([entry(celery_app, seconds=60)], now=T0)
    save_entries([entry(celery_app, seconds=300)], now=T0 + timedelta(seconds=10))
    assert redis_client.zscore(keys.schedule, keys.entry('job')) == pytest.approx(
        T0.timestamp() + 300, abs=1e-6
    )


def test_resave_unchanged_definition_leaves_score_and_meta_alone(
    keys: Keys, celery_app: Celery, redis_client: redis.Redis
) -> None:
    save_entries([entry(celery_app)], now=T0)
    redis_client.zadd(keys.schedule, {keys.entry('job'): 12345.5})
    before = redis_client.hgetall(keys.entry('job'))
    save_entries([entry(celery_app)], now=T0 + timedelta(days=1))
    assert redis_client.zscore(keys.schedule, keys.entry('job')) == 12345.5
    assert redis_client.hgetall(keys.entry('job')) == before


def test_disabled_entry_scores_never(
    keys: Keys, celery_app: Celery, redis_client: redis.Redis
) -> None:
    save_entries([entry(celery_app)], now=T0)
    save_entries([entry(celery_app, enabled=False)], now=T0)
    assert redis_client.zscore(keys.schedule, keys.entry('job')) == -1
    assert json.loads(redis_client.hget(keys.entry('job'), 'definition'))['enabled'] is False
    # enabling again: due from the kept run state
    save_entries([entry(celery_app, enabled=True)], now=T0 + timedelta(seconds=5))
    assert redis_client.zscore(keys.schedule, keys.entry('job')) == pytest.approx(
        T0.timestamp() + 60, abs=1e-6
    )


def test_delete_removes_hash_and_member(
    keys: Keys, celery_app: Celery, redis_client: redis.Redis
) -> None:
    e = entry(celery_app).save()
    entry(celery_app, name='other').save()
    e.delete()
    assert not redis_client.exists(keys.entry('job'))
    assert redis_client.zscore(keys.schedule, keys.entry('job')) is None
    assert redis_client.zscore(keys.schedule, keys.entry('other')) is not None


def test_delete_removes_member_written_without_prefix(
    keys: Keys, celery_app: Celery, redis_client: redis.Redis
) -> None:
    entry(celery_app).save()
    redis_client.zadd(keys.schedule, {'job': 0})
    entry(celery_app).delete()
    assert redis_client.zcard(keys.schedule) == 0


@pytest.mark.parametrize(
    'sched',
    [
        every(42.5),
        crontab(minute='*/10', hour='8-17', day_of_week='mon-fri'),
        rrule(du.WEEKLY, dtstart=datetime(2026, 1, 1, 9, tzinfo=timezone(timedelta(hours=2))),
              byweekday=[du.MO, du.TH], until=datetime(2027, 1, 1, tzinfo=UTC)),
    ],
    ids=['interval', 'crontab', 'rrule'],
)  # fmt: skip
def test_from_key_round_trip(keys: Keys, celery_app: Celery, sched: object) -> None:
    moment = datetime(2026, 7, 14, 12, 30, 0, 5, tzinfo=ZoneInfo('Europe/Paris'))
    original = RedBeatSchedulerEntry(
        'rt', 'proj.tasks.rt', sched, args=[moment, 'x'], kwargs={'when': moment},
        options={'queue': 'q', 'priority': 3}, app=celery_app,
    )  # fmt: skip
    save_entries([original], now=T0)

    for key in (keys.entry('rt'), 'rt'):
        loaded = RedBeatSchedulerEntry.from_key(key, app=celery_app)
        assert loaded.name == 'rt' and loaded.task == 'proj.tasks.rt'
        assert loaded.schedule == sched
        assert loaded.args == [moment, 'x']
        assert getattr(loaded.args[0].tzinfo, 'key', None) == 'Europe/Paris'
        assert loaded.kwargs == {'when': moment}
        assert loaded.options == {'queue': 'q', 'priority': 3}
        assert loaded.enabled is True
        assert loaded.last_run_at == T0
        assert loaded.total_run_count == 0
        assert loaded.key == keys.entry('rt')


def test_from_key_of_missing_key(keys: Keys, celery_app: Celery) -> None:
    with pytest.raises(KeyError) as caught:
        RedBeatSchedulerEntry.from_key(keys.entry('nope'), app=celery_app)
    assert isinstance(caught.value, EntryNotFound)
    assert keys.entry('nope') in str(caught.value)


def test_from_key_of_broken_definition(
    keys: Keys, celery_app: Celery, redis_client: redis.Redis
) -> None:
    redis_client.hset(keys.entry('bad'), 'definition', '{"name": "bad"')
    with pytest.raises(DefinitionError) as caught:
        RedBeatSchedulerEntry.from_key(keys.entry('bad'), app=celery_app)
    assert caught.value.key == keys.entry('bad')


def test_reschedule_sets_last_run_and_due_time(
    keys: Keys, celery_app: Celery, redis_client: redis.Redis
) -> None:
    e = entry(celery_app, seconds=3600)
    save_entries([e], now=T0)
    future = datetime.now(UTC) + timedelta(days=2, microseconds=333)
    e.reschedule(last_run_at=future)
    last_run_at, count = decode_meta(
        keys.entry('job'), redis_client.hget(keys.entry('job'), 'meta')
    )
    assert last_run_at == future
    assert count == 0
    assert redis_client.zscore(keys.schedule, keys.entry('job')) == pytest.approx(
        future.timestamp() + 3600, abs=1e-5
    )
    assert RedBeatSchedulerEntry.from_key(keys.entry('job'), app=celery_app).last_run_at == future


def test_saving_over_a_string_key_fails_and_leaves_it(
    keys: Keys, celery_app: Celery, redis_client: redis.Redis
) -> None:
    redis_client.set(keys.entry('job'), 'precious')
    with pytest.raises(DefinitionError) as caught:
        entry(celery_app).save()
    assert caught.value.key == keys.entry('job')
    assert 'wrong type' in caught.value.reason
    assert redis_client.type(keys.entry('job')) == 'string'
    assert redis_client.get(keys.entry('job')) == 'precious'
    assert redis_client.zscore(keys.schedule, keys.entry('job')) is None


def test_save_entries_of_a_thousand(
    keys: Keys, celery_app: Celery, redis_client: redis.Redis
) -> None:
    entries = [entry(celery_app, name=f'bulk-{i:04d}', seconds=10 + i) for i in range(1000)]
    save_entries(entries, now=T0)
    assert redis_client.zcard(keys.schedule) == 1000
    scores = dict(redis_client.zrange(keys.schedule, 0, -1, withscores=True))
    for i in (0, 499, 999):
        assert scores[keys.entry(f'bulk-{i:04d}')] == pytest.approx(
            T0.timestamp() + 10 + i, abs=1e-6
        )
        assert json.loads(redis_client.hget(keys.entry(f'bulk-{i:04d}'), 'definition'))['name'] == (
            f'bulk-{i:04d}'
        )
    # saving them all again, unchanged, touches nothing
    redis_client.zadd(keys.schedule, {keys.entry('bulk-0500'): 7.0})
    save_entries(entries, now=T0 + timedelta(days=1))
    assert redis_client.zscore(keys.schedule, keys.entry('bulk-0500')) == 7.0


def test_bulk_save_in_several_script_calls_with_shared_and_own_run_state(
    keys: Keys, celery_app: Celery, redis_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redbeat.store, 'SAVE_CHUNK', 7)  # 50 entries: 8 calls, one round trip
    ran = datetime(2025, 6, 1, tzinfo=UTC)
    entries = [entry(celery_app, name=f'c{i:02d}') for i in range(50)]
    entries[20] = entry(celery_app, name='c20', last_run_at=ran, total_run_count=3)
    redis_client.hset(keys.entry('c30'), mapping={'definition': 'old', 'meta': encode_meta(ran, 9)})

    now = T0 + timedelta(microseconds=123_457)
    save_entries(entries, now=now)

    assert redis_client.zcard(keys.schedule) == 50
    due = (now + timedelta(seconds=60)).timestamp()
    assert (
        redis_client.zscore(keys.schedule, keys.entry('c07')) == due
    )  # every bit of the score kept
    # entries saved new together share their run state: sent once, stored in full in each
    for i in (0, 6, 7, 49):
        assert decode_meta('k', redis_client.hget(keys.entry(f'c{i:02d}'), 'meta')) == (now, 0)
    assert decode_meta('k', redis_client.hget(keys.entry('c20'), 'meta')) == (ran, 3)
    assert decode_meta('k', redis_client.hget(keys.entry('c30'), 'meta')) == (ran, 9)  # kept
    assert json.loads(redis_client.hget(keys.entry('c30'), 'definition'))['name'] == 'c30'


def test_saves_load_the_scripts_again_after_a_script_flush(
    keys: Keys, celery_app: Celery, redis_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    redis_client.script_flush()  # as after a Redis restart
    entry(celery_app, name='one').save()  # one script call
    monkeypatch.setattr(redbeat.store, 'SAVE_CHUNK', 2)
    redis_client.script_flush()
    save_entries([entry(celery_app, name=f'p{i}') for i in range(5)])  # a pipeline of three
    assert redis_client.zcard(keys.schedule) == 6
    assert decode_meta('k', redis_client.hget(keys.entry('p4'), 'meta'))[1] == 0


def test_an_entry_given_twice_in_one_bulk_save_ends_as_the_last(
    keys: Keys, celery_app: Celery, redis_client: Any
) -> None:
    first, second = entry(celery_app, args=[1]), entry(celery_app, args=[2], seconds=300)

    save_entries([first, entry(celery_app, name='other'), second], now=T0)

    assert json.loads(redis_client.hget(keys.entry('job'), 'definition'))['args'] == [2]
    assert decode_meta('k', redis_client.hget(keys.entry('job'), 'meta')) == (T0, 0)
    assert redis_client.zscore(keys.schedule, keys.entry('job')) == T0.timestamp() + 300
    assert redis_client.zcard(keys.schedule) == 2


def test_entry_properties_do_no_io(
    keys: Keys, celery_app: Celery, redis_client: redis.Redis
) -> None:
    e = entry(celery_app)
    assert e.key == keys.entry('job')
    _ = e.score, e.is_due(), e.definition()
    assert redis_client.dbsize() == 0
