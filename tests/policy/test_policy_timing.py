"""Scheduling policies, the pure side: tables of fixed datetimes, no clock, no sleeping.

``plan_run`` (missed runs, catch-up window, limits, max runs), ``occurrence_after``
(anchors, start/end), crontabs in an entry's own zone across European and US DST
changes, deterministic jitter, ``Policy`` validation and its JSON form.  The last
tests check in Redis that an entry with the default policy stays byte-compatible
with celery-redbeat 2.x.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis
from celery import Celery
from celery.schedules import BaseSchedule, crontab, schedule

from redbeat import RedBeatSchedulerEntry
from redbeat.codec import decode_definition, encode_definition
from redbeat.errors import DefinitionError
from redbeat.policy import DEFAULT, Policy
from redbeat.schedules import rrule
from redbeat.timing import NEVER, jitter_offset, occurrence_after, plan_run, to_score

UTC = timezone.utc
PARIS = ZoneInfo('Europe/Paris')
NEW_YORK = ZoneInfo('America/New_York')
EVERY_10 = schedule(timedelta(minutes=10))


def at(*fields: int) -> datetime:
    return datetime(*fields, tzinfo=UTC)  # type: ignore[arg-type,misc]


def hm(hour: int, minute: int, second: int = 0) -> datetime:
    return at(2026, 1, 1, hour, minute, second)


# --- plan_run: missed runs ------------------------------------------------------
#
# Every 10 min, first due 10:00, beat looks at 10:35: 10:00, 10:10, 10:20 and 10:30
# are due (four occurrences).  ``once`` catches up as Celery does: the run counts
# as made at 10:35 and the next is 10:45; the others keep the phase (10:30, 10:40).
CAUGHT_UP = (hm(10, 35), hm(10, 45))
IN_PHASE = (hm(10, 30), hm(10, 40))

ALL_DUE = (hm(10, 0), hm(10, 10), hm(10, 20), hm(10, 30))


@pytest.mark.parametrize(
    ('policy', 'sends', 'missed', 'skipped', 'after'),
    [
        # once (the default): the latest is sent, the others counted skipped
        (Policy(), (hm(10, 30),), 0, 3, CAUGHT_UP),
        (Policy(missed='once'), (hm(10, 30),), 0, 3, CAUGHT_UP),
        # once within 20 min (cutoff 10:15): 10:00, 10:10 too old (missed)
        (Policy(missed='once', catchup_window=1200), (hm(10, 30),), 2, 1, CAUGHT_UP),
        # skip: only within its 60 s grace (cutoff 10:34): nothing; all four missed
        (Policy(missed='skip'), (), 4, 0, IN_PHASE),
        # skip within 10 min (cutoff 10:25): the 10:30 one is still sent
        (Policy(missed='skip', catchup_window=600), (hm(10, 30),), 3, 0, IN_PHASE),
        # all: each, oldest first
        (Policy(missed='all'), ALL_DUE, 0, 0, IN_PHASE),
        # all, at most 2: the two oldest; the rest skipped
        (Policy(missed='all', missed_limit=2), ALL_DUE[:2], 0, 2, IN_PHASE),
        # all within 20 min: the two that are not too old
        (Policy(missed='all', catchup_window=1200), ALL_DUE[2:], 2, 0, IN_PHASE),
        # all with limit 0 behaves like once
        (Policy(missed='all', missed_limit=0), (hm(10, 30),), 0, 3, IN_PHASE),
        # a window of 0: everything late is missed
        (Policy(missed='all', catchup_window=0), (), 4, 0, IN_PHASE),
    ],
)
def test_plan_run_missed_policies(
    policy: Policy,
    sends: tuple[datetime, ...],
    missed: int,
    skipped: int,
    after: tuple[datetime, datetime],
) -> None:
    plan = plan_run(EVERY_10, policy, hm(10, 0), hm(10, 35), runs=7)
    assert plan.sends == sends
    assert (plan.missed, plan.skipped) == (missed, skipped)
    assert plan.total_run_count == 7 + len(sends)
    assert (plan.last_run_at, plan.next_occurrence) == after
    assert plan.score == to_score(after[1])


@pytest.mark.parametrize('missed', ['once', 'skip', 'all'])
def test_plan_run_on_time_sends_the_one_occurrence(missed: str) -> None:
    plan = plan_run(EVERY_10, Policy(missed=missed), hm(10, 0), hm(10, 0, 2), runs=0)
    assert plan.sends == (hm(10, 0),)
    assert (plan.missed, plan.skipped, plan.total_run_count) == (0, 0, 1)
    assert plan.next_occurrence == hm(10, 10)


def test_skip_sends_an_occurrence_within_its_grace_only() -> None:
    skip = Policy(missed='skip')
    assert plan_run(EVERY_10, skip, hm(10, 0), hm(10, 0, 59), 0).sends == (hm(10, 0),)
    late = plan_run(EVERY_10, skip, hm(10, 0), hm(10, 1, 1), 0)
    assert (late.sends, late.missed, late.total_run_count) == ((), 1, 0)


@pytest.mark.parametrize(
    ('policy', 'runs', 'sends', 'finished'),
    [
        (Policy(max_runs=5), 3, (hm(10, 30),), False),  # once: one send, 4 of 5
        (Policy(max_runs=4), 3, (hm(10, 30),), True),  # the 4th run is the last
        (Policy(max_runs=5, missed='all'), 3, ALL_DUE[:2], True),  # capped at 2 more
        (Policy(max_runs=3), 3, (), True),  # already done: nothing more
        (Policy(max_runs=0), 0, (), True),
    ],
)
def test_plan_run_max_runs(
    policy: Policy, runs: int, sends: tuple[datetime, ...], finished: bool
) -> None:
    plan = plan_run(EVERY_10, policy, hm(10, 0), hm(10, 35), runs)
    assert plan.sends == sends
    assert plan.total_run_count == runs + len(sends)
    if finished:
        assert (plan.next_occurrence, plan.score) == (None, NEVER)
    else:
        assert plan.next_occurrence == CAUGHT_UP[1]  # once caught up: a period after now


def test_plan_run_stops_at_end_at() -> None:
    policy = Policy(end_at=hm(10, 50))
    plan = plan_run(EVERY_10, policy, hm(10, 0), hm(10, 35), 0)
    assert plan.next_occurrence == hm(10, 45)  # once caught up at 10:35
    last = plan_run(EVERY_10, policy, hm(10, 45), hm(10, 46), 1)
    assert last.sends == (hm(10, 45),)
    assert (last.next_occurrence, last.score) == (None, NEVER)
    policy = Policy(end_at=hm(10, 45))
    last = plan_run(EVERY_10, policy, hm(10, 40), hm(10, 41), 1)
    assert last.sends == (hm(10, 40),)
    assert (last.next_occurrence, last.score) == (None, NEVER)


def test_plan_run_occurrences_before_end_at_only_are_caught_up() -> None:
    plan = plan_run(EVERY_10, Policy(missed='all', end_at=hm(10, 15)), hm(10, 0), hm(10, 35), 0)
    assert plan.sends == (hm(10, 0), hm(10, 10))
    assert plan.next_occurrence is None


def test_plan_run_one_off_finishes() -> None:
    once = rrule('DAILY', dtstart=hm(12, 0), count=1)
    plan = plan_run(once, Policy(on_finish='disable'), hm(12, 0), hm(12, 0, 1), 0)
    assert plan.sends == (hm(12, 0),)
    assert (plan.next_occurrence, plan.score, plan.total_run_count) == (None, NEVER, 1)


def test_plan_run_score_carries_the_jitter_of_the_next_occurrence() -> None:
    policy = Policy(jitter=30)
    plan = plan_run(EVERY_10, policy, hm(10, 0), hm(10, 0, 1), 0, key='redbeat:j')
    offset = jitter_offset('redbeat:j', hm(10, 10), 30)
    assert plan.score == to_score(hm(10, 10)) + offset
    assert 0 <= offset < 30


def test_skip_with_a_large_jitter_still_runs() -> None:
    key, occurrence = 'redbeat:spread', hm(10, 0)
    policy = Policy(missed='skip', jitter=3600)
    offset = jitter_offset(key, occurrence, 3600)
    assert offset > 61  # this key's offset is past skip's grace
    due = occurrence + timedelta(seconds=offset)
    plan = plan_run(schedule(timedelta(hours=2)), policy, occurrence, due, 0, key=key)
    assert plan.sends == (occurrence,)


# --- occurrence_after: anchors, start_at, end_at -------------------------------

QUARTER = schedule(timedelta(minutes=15))


@pytest.mark.parametrize(
    ('anchor', 'moment', 'expected'),
    [
        (at(2026, 1, 1), hm(10, 7, 13), hm(10, 15)),
        (at(2026, 1, 1), hm(10, 15), hm(10, 30)),  # strictly after
        (at(2026, 1, 1), hm(10, 14, 59), hm(10, 15)),
        (at(2026, 1, 1), hm(23, 59), at(2026, 1, 2)),
        (at(2030, 6, 1), hm(10, 7), hm(10, 15)),  # an anchor in the future works too
        (at(2026, 1, 1, 0, 5), hm(10, 7), hm(10, 20)),  # on :05, :20, :35, :50
        (datetime(2026, 1, 1, tzinfo=PARIS), hm(10, 7), hm(10, 15)),  # zone: same instants
    ],
)
def test_anchored_interval(anchor: datetime, moment: datetime, expected: datetime) -> None:
    assert occurrence_after(QUARTER, Policy(anchor=anchor), moment) == expected


def test_anchored_interval_does_not_depend_on_when_beat_ran() -> None:
    policy = Policy(anchor=at(2026, 1, 1))
    late_runs = [hm(10, 0, 3), hm(10, 0, 59), hm(10, 14, 59)]
    assert {occurrence_after(QUARTER, policy, m) for m in late_runs} == {hm(10, 15)}
    # unanchored, the next run drifts with the last one
    assert occurrence_after(QUARTER, DEFAULT, hm(10, 0, 3)) == hm(10, 15, 3)


def test_anchor_is_ignored_by_crontabs() -> None:
    policy = Policy(anchor=at(2026, 1, 1, 0, 7))
    assert occurrence_after(crontab(minute='0'), policy, hm(10, 7)) == hm(11, 0)


@pytest.mark.parametrize(
    ('sched', 'policy', 'moment', 'expected'),
    [
        (crontab(minute='0'), Policy(start_at=hm(12, 0)), hm(10, 35), hm(12, 0)),
        (crontab(minute='0'), Policy(start_at=hm(12, 30)), hm(10, 35), hm(13, 0)),
        (crontab(minute='0'), Policy(start_at=hm(9, 0)), hm(10, 35), hm(11, 0)),
        (QUARTER, Policy(start_at=hm(12, 0), anchor=at(2026, 1, 1)), hm(10, 35), hm(12, 0)),
        (crontab(minute='0'), Policy(end_at=hm(12, 30)), hm(11, 10), hm(12, 0)),
        (crontab(minute='0'), Policy(end_at=hm(12, 30)), hm(12, 0), None),
        (crontab(minute='0'), Policy(end_at=hm(12, 0)), hm(11, 10), hm(12, 0)),  # inclusive
        (EVERY_10, Policy(end_at=hm(10, 45)), hm(10, 35), hm(10, 45)),
        (EVERY_10, Policy(end_at=hm(10, 44)), hm(10, 35), None),
    ],
)
def test_start_and_end(
    sched: BaseSchedule, policy: Policy, moment: datetime, expected: datetime | None
) -> None:
    assert occurrence_after(sched, policy, moment) == expected


def test_interval_with_start_at_first_runs_at_start_at() -> None:
    assert occurrence_after(EVERY_10, Policy(start_at=hm(12, 0)), hm(10, 35)) == hm(12, 0)


# --- crontab in the entry's own zone across DST --------------------------------
#
# The policy's zone wins over the app's (tz=UTC here).  A wall time that does not
# exist (spring forward) runs once at the end of the gap; one that happens twice
# (fall back) runs once, at its first occurrence.


@pytest.mark.parametrize(
    ('cron', 'zone', 'after', 'expected'),
    [
        # Paris, Sunday 2026-03-29: 02:00 CET -> 03:00 CEST; 02:30 does not exist
        ('30 2 * * *', 'Europe/Paris', at(2026, 3, 28, 12), at(2026, 3, 29, 1, 0)),
        ('30 2 * * *', 'Europe/Paris', at(2026, 3, 29, 1, 0), at(2026, 3, 30, 0, 30)),
        ('30 2 * * *', 'Europe/Paris', at(2026, 3, 27, 12), at(2026, 3, 28, 1, 30)),
        ('0 9 * * *', 'Europe/Paris', at(2026, 3, 28, 9), at(2026, 3, 29, 7, 0)),
        ('0 9 * * *', 'Europe/Paris', at(2026, 3, 27, 9), at(2026, 3, 28, 8, 0)),
        # Paris, Sunday 2026-10-25: 03:00 CEST -> 02:00 CET; 02:30 happens twice
        ('30 2 * * *', 'Europe/Paris', at(2026, 10, 24, 12), at(2026, 10, 25, 0, 30)),
        ('30 2 * * *', 'Europe/Paris', at(2026, 10, 25, 0, 30), at(2026, 10, 26, 1, 30)),
        ('0 9 * * *', 'Europe/Paris', at(2026, 10, 25, 0), at(2026, 10, 25, 8, 0)),
        # New York, Sunday 2026-03-08: 02:00 EST -> 03:00 EDT; 02:30 does not exist
        ('30 2 * * *', 'America/New_York', at(2026, 3, 7, 12), at(2026, 3, 8, 7, 0)),
        ('30 2 * * *', 'America/New_York', at(2026, 3, 8, 7, 0), at(2026, 3, 9, 6, 30)),
        ('0 9 * * 1-5', 'America/New_York', at(2026, 3, 6, 15), at(2026, 3, 9, 13, 0)),
        # New York, Sunday 2026-11-01: 02:00 EDT -> 01:00 EST; 01:30 happens twice
        ('30 1 * * *', 'America/New_York', at(2026, 10, 31, 12), at(2026, 11, 1, 5, 30)),
        ('30 1 * * *', 'America/New_York', at(2026, 11, 1, 5, 30), at(2026, 11, 2, 6, 30)),
        # hourly on the fall-back night: 01:00 once (EDT), then 02:00 EST
        ('0 * * * *', 'America/New_York', at(2026, 11, 1, 5, 0), at(2026, 11, 1, 7, 0)),
        ('0 * * * *', 'America/New_York', at(2026, 11, 1, 4, 30), at(2026, 11, 1, 5, 0)),
        # hourly on the spring-forward night in Paris: 01:00 CET, then 03:00 CEST once
        ('0 * * * *', 'Europe/Paris', at(2026, 3, 29, 0, 0), at(2026, 3, 29, 1, 0)),
        ('0 * * * *', 'Europe/Paris', at(2026, 3, 29, 1, 0), at(2026, 3, 29, 2, 0)),
    ],
)
def test_crontab_in_entry_zone_across_dst(
    cron: str, zone: str, after: datetime, expected: datetime
) -> None:
    policy = Policy(timezone=zone)
    assert occurrence_after(crontab.from_string(cron), policy, after, UTC) == expected


def test_entry_zone_wins_over_the_app_zone() -> None:
    nine = crontab(minute='0', hour='9')
    moment = at(2026, 7, 1)
    assert occurrence_after(nine, DEFAULT, moment, NEW_YORK) == at(2026, 7, 1, 13)
    assert occurrence_after(nine, Policy(timezone='Europe/Paris'), moment, NEW_YORK) == at(
        2026, 7, 1, 7
    )


def test_spring_forward_day_runs_a_missing_time_exactly_once() -> None:
    """Walking a whole DST day occurrence by occurrence: one run per wall time."""
    policy = Policy(timezone='Europe/Paris')
    every_half_hour = crontab(minute='0,30')
    found, moment = [], at(2026, 3, 28, 23, 0)  # 00:00 CET on the 29th
    while moment < at(2026, 3, 29, 3, 0):
        following = occurrence_after(every_half_hour, policy, moment)
        assert following is not None
        found.append(following)
        moment = following
    local = [f.astimezone(PARIS).strftime('%H:%M %Z') for f in found]
    # 02:00 and 02:30 do not exist: they become one run at 03:00 CEST
    assert local == ['00:30 CET', '01:00 CET', '01:30 CET', '03:00 CEST', '03:30 CEST',
                     '04:00 CEST', '04:30 CEST', '05:00 CEST']  # fmt: skip


def test_fall_back_day_runs_a_repeated_time_once() -> None:
    policy = Policy(timezone='America/New_York')
    every_half_hour = crontab(minute='0,30')
    found, moment = [], at(2026, 11, 1, 4, 0)  # 00:00 EDT
    while moment < at(2026, 11, 1, 8, 0):
        following = occurrence_after(every_half_hour, policy, moment)
        assert following is not None
        found.append(following)
        moment = following
    local = [f.astimezone(NEW_YORK).strftime('%H:%M %Z') for f in found]
    # 01:00 and 01:30 come twice (EDT, then EST): each runs once, the first time
    assert local == ['00:30 EDT', '01:00 EDT', '01:30 EDT', '02:00 EST', '02:30 EST',
                     '03:00 EST']  # fmt: skip


def test_rrule_in_entry_zone_keeps_wall_time_across_dst_after_reload() -> None:
    rule = rrule('DAILY', dtstart=datetime(2026, 3, 1, tzinfo=PARIS), byhour=9, byminute=0,
                 bysecond=0)  # fmt: skip
    stored = encode_definition({'name': 'r', 'task': 't', 'schedule': rule})
    loaded = decode_definition('redbeat:r', stored)['schedule']
    policy = Policy(timezone='Europe/Paris')
    assert occurrence_after(rule, policy, at(2026, 4, 1)) == at(2026, 4, 1, 7)  # before saving
    assert occurrence_after(loaded, policy, at(2026, 4, 1)) == at(2026, 4, 1, 7)


# --- jitter -------------------------------------------------------------------


@pytest.mark.parametrize('jitter', [0.5, 30, 600, 86400])
def test_jitter_offset_is_deterministic_and_within_bounds(jitter: float) -> None:
    offsets = []
    for i in range(200):
        key, occurrence = f'redbeat:entry-{i}', hm(10, 0) + timedelta(minutes=i)
        offset = jitter_offset(key, occurrence, jitter)
        assert 0 <= offset < jitter
        assert jitter_offset(key, occurrence, jitter) == offset  # the same every time
        assert jitter_offset(key, occurrence.astimezone(PARIS), jitter) == offset  # any zone
        offsets.append(offset)
    assert len(set(offsets)) > 190  # spread, not one value
    assert min(offsets) < jitter * 0.1 and max(offsets) > jitter * 0.9


def test_jitter_differs_per_entry_and_per_occurrence() -> None:
    a = jitter_offset('redbeat:a', hm(10, 0), 60)
    assert a != jitter_offset('redbeat:b', hm(10, 0), 60)
    assert a != jitter_offset('redbeat:a', hm(10, 1), 60)


@pytest.mark.parametrize('jitter', [None, 0, 0.0])
def test_no_jitter_is_no_offset(jitter: float | None) -> None:
    assert jitter_offset('redbeat:a', hm(10, 0), jitter) == 0.0


def test_known_jitter_value_does_not_change_between_releases() -> None:
    """A failover to a beat of another release must draw the same delay: one value pinned."""
    offset = jitter_offset('redbeat:nightly', at(2026, 1, 1, 3), 60)
    assert round(offset, 6) == 6.316472


# --- Policy validation and JSON -------------------------------------------------


@pytest.mark.parametrize(
    ('fields', 'names'),
    [
        ({'timezone': 'Mars/Olympus'}, 'timezone'),
        ({'missed': 'sometimes'}, 'missed'),
        ({'on_finish': 'explode'}, 'on_finish'),
        ({'missed_limit': -1}, 'missed_limit'),
        ({'max_runs': 1.5}, 'max_runs'),
        ({'history': True}, 'history'),
        ({'catchup_window': -5}, 'catchup_window'),
        ({'jitter': '30s'}, 'jitter'),
        ({'start_at': datetime(2026, 1, 1)}, 'start_at'),
        ({'anchor': '2026-01-01'}, 'anchor'),
        ({'end_at': datetime(2026, 1, 1)}, 'end_at'),
        ({'start_at': at(2026, 2, 1), 'end_at': at(2026, 1, 1)}, 'end_at'),
        ({'start_at': at(2026, 1, 1), 'end_at': at(2026, 1, 1)}, 'end_at'),
    ],
)
def test_policy_validation_names_the_field(fields: dict[str, Any], names: str) -> None:
    with pytest.raises(ValueError, match=names):
        Policy(**fields)
    with pytest.raises(DefinitionError, match=f'redbeat:x.*{names}'):
        Policy.from_dict('redbeat:x', fields)


@pytest.mark.parametrize(
    ('text', 'message'),
    [
        ('{"jitter": 5, "colour": "red"}', "unknown fields \\['colour'\\]"),
        ('[1]', 'must be a JSON object'),
        ('{nope', 'not valid JSON'),
        ('{"missed": "never"}', 'missed must be one of'),
    ],
)
def test_stored_policy_errors_name_the_key(text: str, message: str) -> None:
    with pytest.raises(DefinitionError, match=message) as raised:
        Policy.from_json('redbeat:x', text)
    assert raised.value.key == 'redbeat:x'


FULL = Policy(
    timezone='Europe/Paris',
    missed='all',
    missed_limit=10,
    catchup_window=600.0,
    start_at=datetime(2026, 3, 1, 8, 0, tzinfo=PARIS),
    end_at=at(2026, 12, 31, 23, 59),
    max_runs=100,
    on_finish='delete',
    jitter=12.5,
    anchor=datetime(2026, 1, 1, 0, 0, tzinfo=PARIS),
    history=20,
)


@pytest.mark.parametrize(
    'policy',
    [FULL, Policy(missed='skip'), Policy(jitter=0), Policy(max_runs=1, on_finish='disable')],
)
def test_policy_json_round_trip(policy: Policy) -> None:
    text = policy.to_json()
    assert text is not None
    json.loads(text)  # plain JSON
    back = Policy.from_json('redbeat:x', text)
    assert back == policy
    assert back.to_json() == text


def test_policy_json_keeps_the_zone_of_datetimes() -> None:
    text = FULL.to_json() or ''
    back = Policy.from_json('redbeat:x', text)
    assert back.start_at is not None and back.start_at.utcoffset() == timedelta(hours=1)
    assert json.loads(text)['start_at']['timezone'] == 'Europe/Paris'


def test_default_policy_has_no_json() -> None:
    assert DEFAULT.to_json() is None and Policy().is_default()
    assert Policy.from_json('redbeat:x', None) is DEFAULT
    assert Policy.from_json('redbeat:x', '') is DEFAULT
    assert not FULL.is_default()


def test_merged_takes_unset_fields_from_the_defaults() -> None:
    app = Policy(missed='skip', catchup_window=30, history=5)
    assert Policy(jitter=3).merged(app) == Policy(missed='skip', catchup_window=30, history=5,
                                                  jitter=3)  # fmt: skip
    assert Policy(missed='all', history=0).merged(app) == Policy(
        missed='all', catchup_window=30, history=0
    )


# --- byte compatibility in Redis ------------------------------------------------


def test_default_policy_writes_no_policy_field(
    celery_app: Celery, redis_client: redis.Redis
) -> None:
    entry = RedBeatSchedulerEntry('plain', 'proj.tasks.job', crontab(minute='0', hour='3'),
                                  args=[1], app=celery_app)  # fmt: skip
    entry.save()
    assert set(redis_client.hkeys('redbeat:plain')) == {'definition', 'meta'}
    definition = redis_client.hget('redbeat:plain', 'definition')
    # celery-redbeat 2.x's definition fields, nothing added (those at their default left out)
    assert set(json.loads(definition or '')) == {'name', 'task', 'schedule', 'args'}
    assert redis_client.keys('*policy*') == [] and redis_client.keys('*history*') == []


def test_policy_field_comes_and_goes_with_the_policy(
    celery_app: Celery, redis_client: redis.Redis
) -> None:
    sched = schedule(timedelta(minutes=5))
    RedBeatSchedulerEntry('p', 't.x', sched, app=celery_app, policy={'jitter': 5}).save()
    before = redis_client.hget('redbeat:p', 'definition')
    assert json.loads(redis_client.hget('redbeat:p', 'policy') or '') == {'jitter': 5}
    RedBeatSchedulerEntry('p', 't.x', sched, app=celery_app).save()
    assert set(redis_client.hkeys('redbeat:p')) == {'definition', 'meta'}
    # the definition itself never carries the policy
    assert redis_client.hget('redbeat:p', 'definition') == before
