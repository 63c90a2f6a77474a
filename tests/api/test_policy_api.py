"""The policy side of the management API: ``Schedule.add`` keywords, ``add_once``, ``EntryInfo``."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import redis
from celery import Celery
from celery.schedules import crontab

from redbeat.api import Dispatch, Schedule, make_policy
from redbeat.errors import DefinitionError
from redbeat.policy import Policy

UTC = timezone.utc
PARIS = ZoneInfo('Europe/Paris')
SCHEDULE = 'redbeat::schedule'


@pytest.fixture
def api(celery_app: Celery) -> Schedule:
    return Schedule(celery_app)


def stored_policy(client: redis.Redis, name: str) -> dict[str, object] | None:
    text = client.hget(f'redbeat:{name}', 'policy')
    return None if text is None else dict(json.loads(text))


def test_add_with_keywords_and_policy_object(api: Schedule, redis_client: redis.Redis) -> None:
    entry = api.add('k', 't.k', crontab(minute=0), timezone='Europe/Paris', missed='all',
                    missed_limit=4, jitter=10, history=3)  # fmt: skip
    assert entry.policy == Policy(timezone='Europe/Paris', missed='all', missed_limit=4,
                                  jitter=10, history=3)  # fmt: skip
    expected = {'timezone': 'Europe/Paris', 'missed': 'all', 'missed_limit': 4, 'jitter': 10,
                'history': 3}  # fmt: skip
    assert stored_policy(redis_client, 'k') == expected
    # keywords win over policy=
    entry = api.add('o', 't.o', 60, policy=Policy(missed='skip', jitter=5), jitter=7)
    assert entry.policy == Policy(missed='skip', jitter=7)
    info = api.get('o')
    assert info.policy == Policy(missed='skip', jitter=7)


def test_add_from_dict_takes_policy_nested_or_flat(
    api: Schedule, redis_client: redis.Redis
) -> None:
    api.add_from_dict('n', {'task': 't.n', 'schedule': 60,
                            'policy': {'max_runs': 2, 'end_at': '2099-01-01T00:00'}})  # fmt: skip
    assert api.get('n').policy == Policy(max_runs=2, end_at=datetime(2099, 1, 1, tzinfo=UTC))
    api.add_from_dict('f', {'task': 't.f', 'schedule': 900, 'anchor': '2026-01-01T00:00',
                            'timezone': 'Europe/Paris'})  # fmt: skip
    anchor = api.get('f').policy.anchor
    assert anchor == datetime(2026, 1, 1, tzinfo=PARIS)
    # the stored JSON form (what export writes) is accepted as it is
    item = api.get('n').as_item()
    assert item['policy']['end_at']['__type__'] == 'datetime'
    api.add_from_dict('copy', item)
    assert api.get('copy').policy == api.get('n').policy
    with pytest.raises(DefinitionError, match="unknown fields \\['colour'\\]"):
        api.add_from_dict('bad', {'task': 't', 'schedule': 60, 'colour': 'red'})


@pytest.mark.parametrize(
    ('kwargs', 'message'),
    [
        ({'missed': 'never'}, 'missed must be one of'),
        ({'jitter': -1}, 'jitter must be a number of seconds'),
        ({'timezone': 'Nowhere/Land'}, 'timezone'),
        ({'start_at': 'next week'}, 'start_at'),
        ({'start_at': '2027-01-01', 'end_at': '2026-01-01'}, 'end_at must be after start_at'),
        ({'policy': ['jitter']}, 'policy must be a Policy or a mapping'),
        ({'policy': {'jiter': 5}}, 'unknown fields'),
    ],
)
def test_bad_policies_are_refused_before_writing(
    api: Schedule, redis_client: redis.Redis, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(DefinitionError, match=message) as raised:
        api.add('bad', 't.b', 60, **kwargs)  # type: ignore[arg-type]
    assert 'bad' in str(raised.value)
    assert redis_client.keys('*') == []


def test_anchor_only_for_intervals(api: Schedule, redis_client: redis.Redis) -> None:
    with pytest.raises(DefinitionError, match='anchor applies only to interval'):
        api.add('c', 't.c', crontab(minute=0), anchor=datetime(2026, 1, 1, tzinfo=UTC))
    assert redis_client.keys('*') == []


def test_make_policy_reads_naive_times_in_the_zone() -> None:
    policy = make_policy('x', {'timezone': 'Europe/Paris'}, start_at=datetime(2026, 7, 1, 9))
    assert policy.start_at == datetime(2026, 7, 1, 9, tzinfo=PARIS)
    assert make_policy('x', None, end_at='2026-07-01T09:00+02:00').end_at == datetime(
        2026, 7, 1, 7, tzinfo=UTC
    )
    assert make_policy('x') == Policy()


def test_add_once(api: Schedule, redis_client: redis.Redis) -> None:
    at = datetime(2099, 1, 1, 9, 0, 0, 500000, tzinfo=PARIS)
    entry = api.add_once('launch', 't.l', at, kwargs={'k': 1})
    assert entry.policy == Policy(on_finish='disable')
    assert redis_client.zscore(SCHEDULE, 'redbeat:launch') == at.replace(microsecond=0).timestamp()
    rule = json.loads(redis_client.hget('redbeat:launch', 'definition') or '')['schedule']
    assert (rule['__type__'], rule['count']) == ('rrule', 1)
    gone = api.add_once('gone', 't.g', '2099-01-01T09:00', delete_after=True,
                        timezone='America/New_York', history=1)  # fmt: skip
    assert gone.policy == Policy(timezone='America/New_York', on_finish='delete', history=1)
    assert (
        redis_client.zscore(SCHEDULE, 'redbeat:gone')
        == datetime(2099, 1, 1, 14, tzinfo=UTC).timestamp()
    )
    with pytest.raises(DefinitionError, match='in the past'):
        api.add_once('late', 't.l', datetime.now(UTC) - timedelta(seconds=1))
    assert not redis_client.exists('redbeat:late')


def test_entry_info_next_due_in_the_entry_zone(api: Schedule) -> None:
    api.add('tokyo', 't.t', crontab(minute=0, hour=9), timezone='Asia/Tokyo')
    api.add('plain', 't.p', crontab(minute=0, hour=9))
    tokyo, plain = api.get('tokyo'), api.get('plain')
    assert tokyo.next_due is not None and plain.next_due is not None
    assert str(tokyo.next_due.tzinfo) == 'Asia/Tokyo' and tokyo.next_due.hour == 9
    assert plain.next_due.tzinfo is UTC and plain.next_due.hour == 9
    assert tokyo.tz == ZoneInfo('Asia/Tokyo') and plain.tz is None


def test_unreadable_policy_is_an_entry_error(api: Schedule, redis_client: redis.Redis) -> None:
    api.add('p', 't.p', 60)
    redis_client.hset('redbeat:p', 'policy', '{"missed": "sometimes"}')
    info = api.get('p')
    assert info.error is not None and 'missed must be one of' in info.error
    assert [i.error for i in api.list()] == [info.error]


def test_history_records_parse_and_tolerate_bad_ones(
    api: Schedule, redis_client: redis.Redis
) -> None:
    api.add('h', 't.h', 60)
    record = {'scheduled': '2026-01-01T00:00:00+00:00', 'sent': '2026-01-01T00:00:01+00:00',
              'task_id': 'abc', 'outcome': 'sent'}  # fmt: skip
    redis_client.rpush('redbeat::history:h', json.dumps(record), 'not json')
    history = api.get('h').history
    assert history == (
        Dispatch(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC),
                 'abc', 'sent'),
        Dispatch(None, None, None, 'unreadable'),
    )  # fmt: skip
    assert api.get('h', history=None).history is None
    assert api.history('h', 1) == history[:1]


def test_disable_enable_keep_the_policy(api: Schedule, redis_client: redis.Redis) -> None:
    api.add('p', 't.p', 60, max_runs=3, jitter=2)
    api.disable('p')
    api.enable('p')
    assert api.get('p').policy == Policy(max_runs=3, jitter=2)


def test_beat_schedule_items_may_carry_a_policy(
    celery_app: Celery, redis_client: redis.Redis
) -> None:
    from redbeat.schedulers import RedBeatScheduler

    celery_app.conf.beat_schedule = {
        'static': {'task': 't.s', 'schedule': 60.0, 'policy': {'missed': 'skip', 'jitter': 3}},
    }
    scheduler = RedBeatScheduler(app=celery_app)
    scheduler.close()
    assert stored_policy(redis_client, 'static') == {'missed': 'skip', 'jitter': 3}
