"""Scheduling policies in the scheduler: ``RedBeatScheduler.tick()`` against a real Redis.

Beat having been down is simulated by writing an entry's run state (``meta``)
and score in the past, then ticking once; what was sent is read from the
broker's ``celery`` queue (db 1), and counters, history and finish actions
from Redis.  History and finish actions are written with the round trip after
the send, so tests tick a second time (or close the scheduler) before reading
them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import redis
from celery import Celery
from celery.schedules import schedule

from redbeat import RedBeatSchedulerEntry
from redbeat.api import Schedule
from redbeat.codec import decode_definition, decode_meta, encode_meta
from redbeat.policy import Policy
from redbeat.schedulers import RedBeatScheduler
from redbeat.schedules import rrule
from redbeat.timing import jitter_offset, to_score

UTC = timezone.utc
SCHEDULE = 'redbeat::schedule'
Make = Callable[[], RedBeatScheduler]
Sent = Callable[[], list[dict[str, Any]]]
EVERY = 300.0  # seconds
DOWN = 1000.0  # beat was down this long: occurrences at +300, +600, +900 are due


def now() -> datetime:
    return datetime.now(UTC)


def down_entry(
    app: Celery, client: redis.Redis, name: str, policy: Policy | dict[str, Any] | None,
    count: int = 0, every: float = EVERY, down: float = DOWN,
) -> datetime:  # fmt: skip
    """Save an interval entry whose last run was ``down`` seconds ago; it is due now.

    Returns the last run time; the due occurrences are last + k * every.
    """
    last = now() - timedelta(seconds=down)
    entry = RedBeatSchedulerEntry(name, f'proj.tasks.{name}', schedule(timedelta(seconds=every)),
                                  args=[name], app=app, policy=policy)  # fmt: skip
    entry.save()
    client.hset(f'redbeat:{name}', 'meta', encode_meta(last, count))
    client.zadd(SCHEDULE, {f'redbeat:{name}': to_score(last + timedelta(seconds=every))})
    return last


def meta(client: redis.Redis, name: str) -> tuple[datetime | None, int]:
    text = client.hget(f'redbeat:{name}', 'meta')
    return decode_meta(f'redbeat:{name}', None if text is None else str(text))


def counters(client: redis.Redis, name: str) -> tuple[int, int]:
    missed, skipped = client.hmget(f'redbeat:{name}', 'missed', 'skipped')
    return int(missed or 0), int(skipped or 0)


def definition(client: redis.Redis, name: str) -> dict[str, Any] | None:
    text = client.hget(f'redbeat:{name}', 'definition')
    return None if text is None else decode_definition(name, text)  # defaults filled


def eta_of(header: dict[str, Any]) -> str:
    return str(header['id'])


# --- missed runs ------------------------------------------------------------------


@pytest.mark.parametrize(
    ('policy', 'sent_at', 'missed', 'skipped'),
    [
        (None, [900], 0, 2),  # once: the default (Celery's behaviour)
        ({'missed': 'once'}, [900], 0, 2),
        ({'missed': 'all'}, [300, 600, 900], 0, 0),
        ({'missed': 'all', 'missed_limit': 2}, [300, 600], 0, 1),
        ({'missed': 'all', 'catchup_window': 500}, [600, 900], 1, 0),
        ({'missed': 'skip'}, [], 3, 0),  # the newest is 100 s late: past skip's 60 s grace
        ({'missed': 'skip', 'catchup_window': 200}, [900], 2, 0),
    ],
)
def test_missed_runs_after_beat_was_down(
    app: Celery, redis_client: redis.Redis, make_scheduler: Make, sent: Sent,
    policy: dict[str, Any] | None, sent_at: list[int], missed: int, skipped: int,
) -> None:  # fmt: skip
    last = down_entry(app, redis_client, 'job', policy, count=4)
    scheduler = make_scheduler()
    scheduler.tick()
    messages = [h for h in sent() if h['task'] == 'proj.tasks.job']
    assert len(messages) == len(sent_at)
    assert len({h['id'] for h in messages}) == len(messages)  # one task id per occurrence
    assert counters(redis_client, 'job') == (missed, skipped)
    last_run, count = meta(redis_client, 'job')
    assert count == 4 + len(sent_at)
    score = redis_client.zscore(SCHEDULE, 'redbeat:job')
    if (policy or {}).get('missed', 'once') == 'once':
        # Celery's catch-up: the run counts as made now; the next is a period later
        assert last_run > last + timedelta(seconds=900)
        assert score == pytest.approx(to_score(last_run + timedelta(seconds=300)), abs=1e-3)
    else:
        assert last_run == last + timedelta(seconds=900)  # the latest due occurrence
        assert score == pytest.approx(to_score(last + timedelta(seconds=1200)), abs=1e-3)
    # nothing more on the next tick
    scheduler.tick()
    assert len([h for h in sent() if h['task'] == 'proj.tasks.job']) == len(sent_at)


def test_app_wide_default_applies_where_the_entry_says_nothing(
    app: Celery, redis_client: redis.Redis, make_scheduler: Make, sent: Sent
) -> None:
    app.conf.redbeat_missed_runs = 'all'
    down_entry(app, redis_client, 'inherits', None)
    down_entry(app, redis_client, 'overrides', {'missed': 'skip'})
    make_scheduler().tick()
    tasks = [h['task'] for h in sent()]
    assert tasks.count('proj.tasks.inherits') == 3
    assert tasks.count('proj.tasks.overrides') == 0
    assert counters(redis_client, 'overrides') == (3, 0)


def test_counters_add_up_and_show_in_the_api(
    app: Celery, redis_client: redis.Redis, make_scheduler: Make, api: Schedule
) -> None:
    down_entry(app, redis_client, 'flaky', {'missed': 'skip'})
    scheduler = make_scheduler()
    scheduler.tick()
    down_entry(app, redis_client, 'flaky', {'missed': 'skip'})  # down again
    scheduler.tick()
    info = api.get('flaky')
    assert (info.missed, info.skipped) == (6, 0)
    listed = next(iter(api.list('flaky')))
    assert (listed.missed, listed.skipped, listed.history) == (6, 0, None)


# --- max runs, finish actions, one-offs ------------------------------------------


@pytest.mark.parametrize('on_finish', ['keep', 'disable', 'delete'])
def test_max_runs_finishes_the_entry(
    app: Celery, redis_client: redis.Redis, make_scheduler: Make, sent: Sent, on_finish: str
) -> None:
    down_entry(app, redis_client, 'capped', {'missed': 'all', 'max_runs': 3,
                                             'on_finish': on_finish}, count=1)  # fmt: skip
    scheduler = make_scheduler()
    scheduler.tick()
    assert [h['task'] for h in sent()].count('proj.tasks.capped') == 2  # runs 2 and 3
    scheduler.tick()  # carries the finish action
    if on_finish == 'delete':
        assert not redis_client.exists('redbeat:capped')
        assert redis_client.zscore(SCHEDULE, 'redbeat:capped') is None
        assert not redis_client.exists('redbeat::history:capped')
        return
    assert redis_client.zscore(SCHEDULE, 'redbeat:capped') == -1
    assert meta(redis_client, 'capped')[1] == 3
    stored = definition(redis_client, 'capped')
    assert stored is not None and stored['enabled'] is (on_finish == 'keep')


def test_on_finish_happens_when_max_runs_is_already_reached(
    app: Celery, redis_client: redis.Redis, make_scheduler: Make, sent: Sent
) -> None:
    down_entry(app, redis_client, 'done', {'max_runs': 2, 'on_finish': 'disable'}, count=2)
    scheduler = make_scheduler()
    scheduler.tick()
    scheduler.tick()
    assert [h['task'] for h in sent()].count('proj.tasks.done') == 0
    assert redis_client.zscore(SCHEDULE, 'redbeat:done') == -1
    stored = definition(redis_client, 'done')
    assert stored is not None and stored['enabled'] is False


@pytest.mark.parametrize('delete_after', [False, True])
def test_one_off_runs_once_then_disables_or_deletes_itself(
    redis_client: redis.Redis, make_scheduler: Make, sent: Sent, api: Schedule,
    delete_after: bool,
) -> None:  # fmt: skip
    moment = now()
    at = (moment - timedelta(seconds=5)).replace(microsecond=0)
    entry = api.once_entry('launch', 'proj.tasks.launch', at, args=[1], history=3,
                           delete_after=delete_after, now=at - timedelta(seconds=1))  # fmt: skip
    entry.last_run_at = at - timedelta(seconds=60)  # saved a minute before its time
    api.save([entry])
    assert redis_client.zscore(SCHEDULE, 'redbeat:launch') == to_score(at)
    scheduler = make_scheduler()
    scheduler.tick()
    scheduler.tick()
    scheduler.tick()
    assert [h['task'] for h in sent()] == ['proj.tasks.launch']
    if delete_after:
        assert redis_client.keys('redbeat:launch*') == []
        assert redis_client.zscore(SCHEDULE, 'redbeat:launch') is None
        return
    assert redis_client.zscore(SCHEDULE, 'redbeat:launch') == -1
    stored = definition(redis_client, 'launch')
    assert stored is not None and stored['enabled'] is False
    info = api.get('launch')
    assert info.total_run_count == 1 and info.policy.on_finish == 'disable'
    assert info.history is not None and [d.outcome for d in info.history] == ['sent']
    assert info.history[0].scheduled == at


def test_rrule_past_its_end_is_parked_without_sending(
    app: Celery, redis_client: redis.Redis, make_scheduler: Make, sent: Sent
) -> None:
    start = now() - timedelta(hours=3)
    rule = rrule('HOURLY', dtstart=start, count=2)
    RedBeatSchedulerEntry('ended', 'proj.tasks.ended', rule, app=app,
                          last_run_at=start + timedelta(hours=1), total_run_count=2,
                          policy={'on_finish': 'keep'}).save()  # fmt: skip
    assert redis_client.zscore(SCHEDULE, 'redbeat:ended') == -1
    make_scheduler().tick()
    assert sent() == []


# --- history ------------------------------------------------------------------------


def test_history_is_written_newest_first_and_trimmed(
    app: Celery, redis_client: redis.Redis, make_scheduler: Make, sent: Sent, api: Schedule
) -> None:
    last = down_entry(app, redis_client, 'logged', {'missed': 'all', 'history': 2})
    scheduler = make_scheduler()
    before = now()
    scheduler.tick()
    scheduler.tick()
    raw = redis_client.lrange('redbeat::history:logged', 0, -1)
    assert len(raw) == 2  # three sent, two kept
    records = [json.loads(r) for r in raw]
    assert set(records[0]) == {'scheduled', 'sent', 'task_id', 'outcome'}
    scheduled = [datetime.fromisoformat(r['scheduled']) for r in records]
    assert scheduled == [last + timedelta(seconds=900), last + timedelta(seconds=600)]
    ids = {h['id'] for h in sent()}
    assert {r['task_id'] for r in records} <= ids
    assert {r['outcome'] for r in records} == {'sent'}
    for r in records:
        assert before <= datetime.fromisoformat(r['sent']) <= now()
    history = api.get('logged').history
    assert history is not None and [d.scheduled for d in history] == scheduled
    assert [d.task_id for d in history] == [r['task_id'] for r in records]


def test_history_default_size_and_zero(
    app: Celery, redis_client: redis.Redis, make_scheduler: Make
) -> None:
    app.conf.redbeat_history_size = 5
    down_entry(app, redis_client, 'many', {'missed': 'all'}, every=60, down=60 * 8 + 30)
    down_entry(app, redis_client, 'none', {'missed': 'all', 'history': 0})
    scheduler = make_scheduler()
    scheduler.tick()
    scheduler.close()  # closing writes the last tick's records
    assert redis_client.llen('redbeat::history:many') == 5  # redbeat_history_size
    assert not redis_client.exists('redbeat::history:none')


def test_no_history_unless_asked(
    app: Celery, redis_client: redis.Redis, make_scheduler: Make
) -> None:
    down_entry(app, redis_client, 'quiet', {'missed': 'all'}, every=60, down=150)
    scheduler = make_scheduler()
    scheduler.tick()
    scheduler.close()
    assert redis_client.hget('redbeat:quiet', 'meta') is not None  # it did run
    assert not redis_client.exists('redbeat::history:quiet')  # default size 0: none kept


def test_history_size_setting(app: Celery, redis_client: redis.Redis, make_scheduler: Make) -> None:
    app.conf.redbeat_history_size = 1
    down_entry(app, redis_client, 'one', {'missed': 'all'})
    scheduler = make_scheduler()
    scheduler.tick()
    scheduler.tick()
    assert redis_client.llen('redbeat::history:one') == 1


# --- jitter -------------------------------------------------------------------------


def test_jitter_moves_the_score_within_bounds_and_survives_save_and_reload(
    app: Celery, redis_client: redis.Redis, api: Schedule
) -> None:
    jitter = 600.0
    api.add('spread', 'proj.tasks.spread', 3600, policy={'jitter': jitter})
    score = redis_client.zscore(SCHEDULE, 'redbeat:spread')
    last_run, _ = meta(redis_client, 'spread')
    assert score is not None and last_run is not None
    occurrence = last_run + timedelta(hours=1)
    offset = score - to_score(occurrence)
    assert 0 <= offset < jitter
    assert offset == pytest.approx(jitter_offset('redbeat:spread', occurrence, jitter), abs=1e-3)
    # saved again unchanged, with changed args, and loaded back: the same delay
    api.add('spread', 'proj.tasks.spread', 3600, policy={'jitter': jitter})
    assert redis_client.zscore(SCHEDULE, 'redbeat:spread') == score
    api.add('spread', 'proj.tasks.spread', 3600, args=[2], policy={'jitter': jitter})
    assert redis_client.zscore(SCHEDULE, 'redbeat:spread') == pytest.approx(score, abs=1e-3)
    loaded = RedBeatSchedulerEntry.from_key('redbeat:spread', app=app)
    assert loaded.policy == Policy(jitter=jitter)
    assert loaded.score == pytest.approx(score, abs=1e-3)


def test_jittered_entry_is_sent_at_its_delayed_time(
    app: Celery, redis_client: redis.Redis, make_scheduler: Make, sent: Sent
) -> None:
    jitter = 30.0
    last = down_entry(app, redis_client, 'jit', {'jitter': jitter}, every=120, down=160)
    occurrence = last + timedelta(seconds=120)  # 40 s ago, plus up to 30 s of jitter: due
    offset = jitter_offset('redbeat:jit', occurrence, jitter)
    redis_client.zadd(SCHEDULE, {'redbeat:jit': to_score(occurrence) + offset})
    scheduler = make_scheduler()
    scheduler.tick()
    assert [h['task'] for h in sent()] == ['proj.tasks.jit']
    following = occurrence + timedelta(seconds=120)  # at most 40 s late: keeps its phase
    score = redis_client.zscore(SCHEDULE, 'redbeat:jit')
    assert score is not None
    assert 0 <= score - to_score(following) < jitter
    expected = to_score(following) + jitter_offset('redbeat:jit', following, jitter)
    assert score == pytest.approx(expected, abs=1e-3)


def test_jitter_not_yet_due_is_not_sent(
    app: Celery, redis_client: redis.Redis, make_scheduler: Make, sent: Sent
) -> None:
    """The occurrence has come but its delay has not: nothing is sent yet."""
    last = down_entry(app, redis_client, 'later', {'jitter': 3600}, every=60, down=61)
    occurrence = last + timedelta(seconds=60)
    redis_client.zadd(SCHEDULE, {'redbeat:later': time.time() + 3000})
    make_scheduler().tick()
    assert sent() == []
    assert occurrence < now()


# --- time zones ------------------------------------------------------------------


def test_crontab_entry_zone_survives_save_and_load(app: Celery, api: Schedule) -> None:
    entry = api.add('paris', 'proj.tasks.p', {'__type__': 'crontab', 'minute': '30',
                    'hour': '2', 'day_of_week': '*', 'day_of_month': '*',
                    'month_of_year': '*'}, timezone='Europe/Paris')  # fmt: skip
    loaded = RedBeatSchedulerEntry.from_key('redbeat:paris', app=app)
    assert loaded.policy.timezone == 'Europe/Paris' == entry.policy.timezone
    info = api.get('paris')
    assert info.next_due is not None
    local = info.next_due
    assert str(local.tzinfo) == 'Europe/Paris' and (local.hour, local.minute) in {(2, 30), (3, 0)}
