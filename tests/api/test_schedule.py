"""The management API against a real Redis: what it returns and what it leaves in Redis."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
import redis
from celery import Celery
from celery.schedules import crontab, schedule

from redbeat.api import Dispatch, Schedule
from redbeat.errors import DefinitionError, EntryNotFound
from redbeat.store import ScheduleStore
from tests.integration.test_round_trips import counted_round_trips

SCHEDULE = 'redbeat::schedule'


@pytest.fixture
def api(celery_app: Celery) -> Schedule:
    return Schedule.from_app(celery_app)


def _meta(client: redis.Redis, name: str) -> dict[str, object]:
    return dict(json.loads(client.hget(f'redbeat:{name}', 'meta') or '{}'))


def test_add_stores_definition_and_score(api: Schedule, redis_client: redis.Redis) -> None:
    before = datetime.now(timezone.utc).timestamp()
    api.add('ping', 'proj.ping', 300, args=[1], options={'queue': 'q'})
    stored = json.loads(redis_client.hget('redbeat:ping', 'definition') or '')
    assert stored['task'] == 'proj.ping'
    assert stored['schedule'] == {'__type__': 'interval', 'every': 300.0, 'relative': False}
    assert stored['args'] == [1] and stored['options'] == {'queue': 'q'}
    score = redis_client.zscore(SCHEDULE, 'redbeat:ping')
    assert score is not None and before + 299 < score < before + 302

    info = api.get('ping')
    assert (info.task, info.args, info.enabled, info.total_run_count) == ('proj.ping', [1], True, 0)
    assert info.next_due is not None and info.next_due.timestamp() == score


def test_add_keeps_run_state(api: Schedule, redis_client: redis.Redis) -> None:
    api.add('job', 'proj.job', crontab(minute='0'))
    meta = _meta(redis_client, 'job')
    meta['total_run_count'] = 7
    redis_client.hset('redbeat:job', 'meta', json.dumps(meta))
    api.add_from_dict('job', {'task': 'proj.job2', 'schedule': timedelta(minutes=1)})
    assert api.get('job').total_run_count == 7
    assert api.get('job').task == 'proj.job2'


def test_add_validates_before_writing(api: Schedule, redis_client: redis.Redis) -> None:
    with pytest.raises(DefinitionError, match='not a task name'):
        api.add('x', 'bad task', 60)
    with pytest.raises(DefinitionError, match='schedule'):
        api.add_many({'ok': {'task': 't', 'schedule': 60}, 'bad': {'task': 't'}})
    assert redis_client.keys('*') == []


def test_list_pages_with_bounded_round_trips(api: Schedule, redis_client: redis.Redis) -> None:
    api.add_many({f'e{i:04d}': {'task': 't.x', 'schedule': 60} for i in range(2500)})
    redis_client.hset('redbeat:orphan', 'definition', json.dumps(
        {'name': 'orphan', 'task': 't.o', 'schedule': {'__type__': 'interval', 'every': 5}}
    ))  # fmt: skip
    with counted_round_trips(api.store.client) as calls:
        infos = list(api.list(page_size=500))
    assert len(infos) == 2501
    assert len({i.name for i in infos}) == 2501
    orphan = next(i for i in infos if i.name == 'orphan')
    assert orphan.score is None and orphan.task == 't.o'
    # Per page: ZSCAN + one pipeline (fields, counters); then SCAN + ZMSCORE + a pipeline.
    # Never one round trip per entry, and listing never reads history.
    assert calls[0] < 2500 / 50, calls
    assert all(i.history is None for i in infos)


def test_list_filters(api: Schedule) -> None:
    api.add('a.one', 'proj.a', 60)
    api.add('a.two', 'proj.b', 60, enabled=False)
    api.add('b.one', 'proj.a', 60)
    assert sorted(i.name for i in api.list('a.*')) == ['a.one', 'a.two']
    assert sorted(i.name for i in api.list(enabled=False)) == ['a.two']
    assert sorted(i.name for i in api.list(task='proj.a')) == ['a.one', 'b.one']


def test_listing_survives_malformed_entries(api: Schedule, redis_client: redis.Redis) -> None:
    api.add('good', 'proj.ok', 60)
    redis_client.hset('redbeat:bad', 'definition', '{not json')
    redis_client.zadd(SCHEDULE, {'redbeat:bad': 0})
    redis_client.set('redbeat:str', 'x')
    redis_client.zadd(SCHEDULE, {'redbeat:str': 0})
    infos = {i.name: i for i in api.list()}
    assert infos['good'].error is None
    assert 'not valid JSON' in (infos['bad'].error or '')
    assert 'wrong type' in (infos['str'].error or '')
    assert infos['bad'].definition == '{not json'


def test_get_missing_and_bare_member(api: Schedule, redis_client: redis.Redis) -> None:
    with pytest.raises(EntryNotFound):
        api.get('nope')
    api.add('hand', 'proj.h', 60)
    redis_client.zrem(SCHEDULE, 'redbeat:hand')
    redis_client.zadd(SCHEDULE, {'hand': 0})  # as the RedBeat README writes it
    info = api.get('hand')
    assert info.due_now and info.task == 'proj.h'


def test_remove_names_and_globs_in_one_round_trip(
    api: Schedule, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.add_many({n: {'task': 't', 'schedule': 60} for n in ('r.1', 'r.2', 'keep', 'x')})
    deletes: list[list[str]] = []
    delete = ScheduleStore.delete_each

    def spy(self: ScheduleStore, names: list[str], notify: bool = True) -> list[bool]:
        deletes.append(list(names))
        return delete(self, names, notify)

    monkeypatch.setattr(ScheduleStore, 'delete_each', spy)
    assert api.remove('r.*', 'x') == 3
    assert deletes == [['r.1', 'r.2', 'x']]
    assert redis_client.zrange(SCHEDULE, 0, -1) == ['redbeat:keep']
    assert not redis_client.exists('redbeat:r.1', 'redbeat:x')


def test_disable_and_enable_keep_run_state(api: Schedule, redis_client: redis.Redis) -> None:
    api.add('p', 'proj.p', 60)
    meta = _meta(redis_client, 'p')
    meta['total_run_count'] = 3
    redis_client.hset('redbeat:p', 'meta', json.dumps(meta))
    api.disable('p')
    assert redis_client.zscore(SCHEDULE, 'redbeat:p') == -1
    assert api.get('p').enabled is False and api.get('p').total_run_count == 3
    api.enable('p')
    assert (redis_client.zscore(SCHEDULE, 'redbeat:p') or 0) > 0
    assert api.get('p').enabled is True and api.get('p').total_run_count == 3


def test_run_now_sends_without_touching_state(
    api: Schedule, redis_client: redis.Redis, celery_app: Celery
) -> None:
    api.add('r', 'proj.run', 3600, args=[1, 2], kwargs={'k': 'v'})
    score = redis_client.zscore(SCHEDULE, 'redbeat:r')
    meta = redis_client.hget('redbeat:r', 'meta')
    task_id = api.run_now('r')
    broker = redis.Redis.from_url(celery_app.conf.broker_url, decode_responses=True)
    messages = broker.lrange('celery', 0, -1)
    assert len(messages) == 1
    message = json.loads(messages[0])
    assert message['headers']['task'] == 'proj.run' and message['headers']['id'] == task_id
    assert redis_client.zscore(SCHEDULE, 'redbeat:r') == score
    assert redis_client.hget('redbeat:r', 'meta') == meta


def test_from_url_without_app(redis_url: str, redis_client: redis.Redis) -> None:
    api = Schedule.from_url(redis_url, prefix='other:')
    api.add('n', 'proj.n', schedule(timedelta(seconds=10)))
    assert redis_client.zrange('other::schedule', 0, -1) == ['other:n']
    assert [i.name for i in api.list()] == ['n']
    assert api.overview().lock_key == 'other::lock'


def test_check_and_fix(api: Schedule, redis_client: redis.Redis) -> None:
    api.add('ok', 'proj.ok', 60)
    api.add('off', 'proj.off', 60, enabled=False)
    redis_client.zadd(SCHEDULE, {'redbeat:off': 12345})  # stale score
    redis_client.zadd(SCHEDULE, {'redbeat:ghost': 0})  # member without a hash
    redis_client.hset('redbeat:orphan', 'definition', json.dumps(
        {'name': 'orphan', 'task': 't', 'schedule': {'__type__': 'interval', 'every': 5}}
    ))  # fmt: skip
    redis_client.hset('redbeat:broken', 'definition', '[]')
    kinds = {(p.kind, p.name) for p in api.check()}
    assert kinds == {
        ('stale-disabled-score', 'off'),
        ('dangling-member', 'ghost'),
        ('unscheduled', 'orphan'),
        ('unscheduled', 'broken'),
        ('malformed', 'broken'),
    }
    assert api.fix(api.check()) == 3
    assert redis_client.zscore(SCHEDULE, 'redbeat:off') == -1
    assert redis_client.zscore(SCHEDULE, 'redbeat:ghost') is None
    assert (redis_client.zscore(SCHEDULE, 'redbeat:orphan') or 0) > 0
    assert redis_client.hget('redbeat:broken', 'definition') == '[]'  # never deleted
    assert {p.kind for p in api.check()} == {'malformed', 'unscheduled'}


def test_overview(api: Schedule, redis_client: redis.Redis) -> None:
    now = datetime.now(timezone.utc)
    api.add('later', 'proj.l', 3600)
    redis_client.zadd(SCHEDULE, {'redbeat:due': now.timestamp() - 1})
    redis_client.zadd(SCHEDULE, {'redbeat:late': now.timestamp() - 3600})
    redis_client.set('redbeat::lock', 'host:1:abc', px=8000)
    view = api.overview(now)
    assert (view.entries, view.due, view.overdue) == (3, 2, 1)
    assert view.lock_holder == 'host:1:abc' and 0 < (view.lock_ttl or 0) <= 8
    assert [n for n, _ in view.upcoming] == ['late', 'due', 'later']
    assert view.eviction_policy == 'noeviction' and not view.eviction_risk


def test_fix_keeps_a_member_whose_hash_appeared_after_the_check(
    api: Schedule, redis_client: redis.Redis
) -> None:
    redis_client.zadd('redbeat::schedule', {'redbeat:late': 0, 'ghost': 0})
    problems = [p for p in api.check() if p.kind == 'dangling-member']
    assert sorted(p.name for p in problems) == ['ghost', 'late']
    # The hash is written between the check and the fix: it and its member stay.
    definition = {'name': 'late', 'task': 'x.y', 'schedule': {'__type__': 'interval', 'every': 5}}
    redis_client.hset('redbeat:late', 'definition', json.dumps(definition))

    assert api.fix(problems) == 1
    assert redis_client.zscore('redbeat::schedule', 'redbeat:late') == 0
    assert redis_client.zscore('redbeat::schedule', 'ghost') is None
    assert redis_client.hget('redbeat:late', 'definition') == json.dumps(definition)


def test_plan_import_then_apply(api: Schedule, redis_client: redis.Redis) -> None:
    """Import planning is the API's: the CLI only prints the plan and applies it."""
    api.add('same', 'proj.a', 60)
    api.add('changed', 'proj.a', 60)
    api.add('extra', 'proj.a', 60)
    entries = [
        api.entry('same', 'proj.a', 60),
        api.entry('changed', 'proj.b', 60),
        api.entry('new', 'proj.a', 60),
    ]

    plan = api.plan_import(entries, prune=True)

    assert plan.steps == [('=', 'same'), ('~', 'changed'), ('+', 'new'), ('-', 'extra')]
    assert [e.name for e in plan.changed] == ['changed', 'new'] and plan.removed == ['extra']
    assert redis_client.exists('redbeat:new') == 0  # planning writes nothing
    api.apply_import(plan)
    assert sorted(api.names()) == ['changed', 'new', 'same']
    assert api.get('changed', history=None).task == 'proj.b'


def test_entries_made_by_a_schedule_save_where_it_reads_without_an_app(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """No Celery app is built behind the caller's back: the entry carries the store."""
    api = Schedule.from_url(redis_url, 'elsewhere:')
    entry = api.entry('job', 'proj.a', 60)
    entry.save()
    assert entry.context is api.context
    assert redis_client.exists('elsewhere:job') == 1
    assert api.names() == ['job']


def test_history_records_read_as_iso_text_on_every_python() -> None:
    """A record written by another tool (``Z``, one fractional digit) reads on
    Python 3.9 and 3.10 too, whose fromisoformat refuses both."""

    text = json.dumps({'scheduled': '2026-03-30T01:00:00Z', 'sent': '2026-03-30T01:00:12.5Z',
                       'task_id': 'id-2', 'outcome': 'sent'})  # fmt: skip
    record = Dispatch.from_json(text)
    assert record == Dispatch(
        datetime(2026, 3, 30, 1, tzinfo=timezone.utc),
        datetime(2026, 3, 30, 1, 0, 12, 500000, tzinfo=timezone.utc),
        'id-2',
        'sent',
    )
