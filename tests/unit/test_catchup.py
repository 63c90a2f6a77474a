"""Catch-up without enumeration (redbeat.timing.plan_run): pure, no clock, no Redis.

``reference_plan_run`` is the straightforward rule: list every occurrence due
from ``first`` to ``now`` and sort them.  ``plan_run`` must decide exactly the
same on every case small enough to list (tables and hypothesis-generated
cases: intervals, relative intervals, anchors, crontabs and rrules in DST
zones, every policy), and past an outage of years it must do so with a number
of schedule computations that does not grow with the outage.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from celery.schedules import BaseSchedule, crontab, schedule, solar
from dateutil import rrule as du
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from redbeat import timing
from redbeat.policy import SKIP_GRACE, Policy
from redbeat.schedules import rrule
from redbeat.timing import RunPlan, occurrence_after, plan_run

UTC = timezone.utc
ZONES = [
    UTC,
    ZoneInfo('Europe/Paris'),
    ZoneInfo('America/New_York'),
    ZoneInfo('Asia/Kolkata'),  # +05:30: hours fall on the half hour in UTC
    ZoneInfo('Australia/Lord_Howe'),  # DST of 30 minutes
]
#: Enough for every case here; the reference never stops early.
_REFERENCE_LIMIT = 100_000


def reference_plan_run(
    sched: BaseSchedule,
    policy: Policy,
    first: datetime,
    now: datetime,
    runs: int,
    tz: tzinfo = UTC,
    key: str = '',
    most: int = _REFERENCE_LIMIT,
) -> RunPlan:
    """The rule of plan_run, by listing every due occurrence (AssertionError past ``most``)."""
    now = timing.utc(now)
    due = [timing.utc(first)]
    while True:
        following = occurrence_after(sched, policy, due[-1], tz)
        if following is None or following > now:
            break
        due.append(following)
        assert len(due) < most, 'case too large for the reference'
    window = policy.catchup_window
    if window is None and policy.missed == 'skip':
        window = SKIP_GRACE
    cutoff = now - timedelta(seconds=window) if window is not None else None
    within = [
        o
        for o in due
        if cutoff is None
        or o + timedelta(seconds=timing.jitter_offset(key, o, policy.jitter)) >= cutoff
    ]
    missed = len(due) - len(within)
    if policy.missed == 'all':
        limit = policy.missed_limit if policy.missed_limit is not None else 100
        sends = within[:limit] if limit else within[-1:]
    else:
        sends = within[-1:]
    if policy.max_runs is not None:
        sends = sends[: max(0, policy.max_runs - runs)]
    skipped = len(within) - len(sends)
    last = due[-1]
    once = policy.missed in (None, 'once')
    late = timing._late_interval(sched, policy, sends, now, key)
    if once and (len(due) > 1 or late):
        last = max(last, now)
    total = runs + len(sends)
    finished = policy.max_runs is not None and total >= policy.max_runs
    following = None if finished else occurrence_after(sched, policy, last, tz)
    return RunPlan(
        sends=tuple(sends),
        last_run_at=last,
        total_run_count=total,
        next_occurrence=following,
        score=timing.due_score(key, following, policy),
        missed=missed,
        skipped=skipped,
    )


def counted_one_by_one(sched: BaseSchedule, policy: Policy) -> bool:
    """Crontab, solar, rrule: counters may stop at COUNT_LIMIT."""
    return not isinstance(sched, schedule) or isinstance(sched, (crontab, solar))


def period(sched: BaseSchedule) -> float:
    return sched.run_every.total_seconds() if isinstance(sched, schedule) else 60.0


def assert_same(plan: RunPlan, expected: RunPlan, sched: BaseSchedule, policy: Policy) -> None:
    """Equal; except that counted one by one, a counter stops past COUNT_LIMIT, and
    that past a thousand occurrences within a jitter of the window's edge, the
    older ones count as missed."""
    if (policy.jitter or 0) > 1000 * period(sched) and policy.catchup_window is not None:
        assert plan.missed + plan.skipped == expected.missed + expected.skipped
        plan = replace(plan, missed=expected.missed, skipped=expected.skipped)
    if (
        counted_one_by_one(sched, policy)
        and max(expected.missed, expected.skipped) >= timing.COUNT_LIMIT
    ):
        for counted, exact in ((plan.missed, expected.missed), (plan.skipped, expected.skipped)):
            assert min(exact, timing.COUNT_LIMIT - 1) <= counted <= exact
        plan = replace(plan, missed=expected.missed, skipped=expected.skipped)
    assert plan == expected


def at(*fields: int, tz: Any = UTC) -> datetime:
    return datetime(*fields, tzinfo=tz)


def hm(hour: int, minute: int) -> datetime:
    return at(2026, 1, 1, hour, minute)


def every(seconds: float, relative: bool = False) -> schedule:
    return schedule(run_every=timedelta(seconds=seconds), relative=relative)


def check(
    sched: BaseSchedule,
    policy: Policy,
    start: datetime,
    now: datetime,
    runs: int = 0,
    tz: tzinfo = UTC,
    key: str = 'redbeat:k',
) -> RunPlan:
    """plan_run == reference_plan_run for the first occurrence after ``start``."""
    first = occurrence_after(sched, policy, start, tz)
    assert first is not None and first <= now, 'the case must have something due'
    expected = reference_plan_run(sched, policy, first, now, runs, tz, key)
    assert_same(plan_run(sched, policy, first, now, runs, tz, key), expected, sched, policy)
    return expected


# --- tables -----------------------------------------------------------------------

T0 = at(2026, 3, 28, 22)  # Paris springs forward on 2026-03-29, New York on 03-08
FALL = at(2026, 10, 24, 22)  # Paris falls back on 2026-10-25, New York on 11-01

SCHEDULES = {
    'every 10 min': every(600),
    'every 7 s': every(7),
    'every 90 s relative': every(90, relative=True),
    'every 2.5 h relative': every(9000, relative=True),
    'every 25 h relative': every(90000, relative=True),
    'every 2.5 s': every(2.5),
    'crontab */5': crontab(minute='*/5'),
    'crontab hourly at :30, 1-3 h': crontab(minute='30', hour='1-3'),
    'crontab daily 02:30': crontab(minute='30', hour='2'),
    'crontab minutes 0-5 of 3 h': crontab(minute='0-5', hour='3'),
    'rrule hourly count 20': rrule(du.HOURLY, dtstart=at(2026, 3, 28), count=20),
    'rrule every 3 h until': rrule(
        du.HOURLY, interval=3, dtstart=at(2026, 3, 27), until=at(2026, 3, 31)
    ),
    'rrule daily, zoned dtstart': rrule(
        du.DAILY, dtstart=at(2026, 3, 1, 2, 30, tz=ZoneInfo('Europe/Paris'))
    ),
}  # fmt: skip
POLICIES = {
    'default': Policy(),
    'once, window 20 min': Policy(missed='once', catchup_window=1200),
    'skip': Policy(missed='skip'),
    'skip, window 1 h': Policy(missed='skip', catchup_window=3600),
    'all': Policy(missed='all'),
    'all, limit 3': Policy(missed='all', missed_limit=3),
    'all, limit 0': Policy(missed='all', missed_limit=0),
    'all, window 2 h, jitter 50 min': Policy(missed='all', catchup_window=7200, jitter=3000),
    'once, window 1 h, jitter 10 min': Policy(catchup_window=3600, jitter=600),
    'max_runs 5': Policy(max_runs=5),
    'all, max_runs 4': Policy(missed='all', max_runs=4),
    'end_at': Policy(end_at=at(2026, 3, 29, 3)),
    'start_at': Policy(start_at=at(2026, 3, 29, 0, 17)),
    'Paris': Policy(timezone='Europe/Paris'),
    'anchored': Policy(anchor=at(2020, 1, 1, 0, 3)),
}


@pytest.mark.parametrize('tz', ZONES, ids=str)
@pytest.mark.parametrize('start', [T0, FALL], ids=['spring', 'fall'])
@pytest.mark.parametrize('policy', POLICIES.values(), ids=POLICIES)
@pytest.mark.parametrize('sched', SCHEDULES.values(), ids=SCHEDULES)
def test_plan_run_decides_as_the_enumeration(
    sched: BaseSchedule, policy: Policy, start: datetime, tz: tzinfo
) -> None:
    """Across DST changes, for a catch-up of a few hours: same plan as the listing."""
    first = occurrence_after(sched, policy, start - timedelta(hours=1), tz)
    if first is None:
        pytest.skip('no occurrence after the start (rrule over)')
    for hours in (0, 0.001, 1, 5, 9):
        now = max(first, start + timedelta(hours=hours))
        expected = reference_plan_run(sched, policy, first, now, 1, tz, 'redbeat:t')
        plan = plan_run(sched, policy, first, now, 1, tz, 'redbeat:t')
        assert_same(plan, expected, sched, policy)


@pytest.mark.parametrize('policy', POLICIES.values(), ids=POLICIES)
@pytest.mark.parametrize('sched', SCHEDULES.values(), ids=SCHEDULES)
def test_due_now_off_the_schedule_is_sent_as_the_enumeration_does(
    sched: BaseSchedule, policy: Policy
) -> None:
    """Score 0 ("due now": written by hand, or run now on request): the moment itself
    is the due occurrence, on the schedule's grid or not, and it is sent."""
    for now in (T0 + timedelta(minutes=7, seconds=13, microseconds=5), FALL):
        expected = reference_plan_run(sched, policy, now, now, 0, UTC, 'redbeat:t')
        plan = plan_run(sched, policy, now, now, 0, UTC, 'redbeat:t')
        assert_same(plan, expected, sched, policy)
        assert plan.sends == (now,)


def test_worked_example_of_the_docs() -> None:
    """docs/missed-runs.rst: every 10 min, last run 10:00, back at 10:45."""
    start, now = at(2026, 1, 1, 10), at(2026, 1, 1, 10, 45)
    rows = {
        Policy(): ([at(2026, 1, 1, 10, 40)], 0, 3),
        Policy(catchup_window=1200): ([at(2026, 1, 1, 10, 40)], 2, 1),
        Policy(missed='skip'): ([], 4, 0),
        Policy(missed='skip', catchup_window=600): ([at(2026, 1, 1, 10, 40)], 3, 0),
        Policy(missed='all'): ([at(2026, 1, 1, 10, m) for m in (10, 20, 30, 40)], 0, 0),
        Policy(missed='all', missed_limit=2): ([hm(10, 10), hm(10, 20)], 0, 2),
        Policy(missed='all', catchup_window=1200): ([hm(10, 30), hm(10, 40)], 2, 0),
    }  # fmt: skip
    for policy, (sends, missed, skipped) in rows.items():
        plan = check(every(600), policy, start, now)
        assert (list(plan.sends), plan.missed, plan.skipped) == (sends, missed, skipped), policy


@pytest.mark.parametrize('event', ['sunrise', 'solar_noon'])
def test_solar_catch_up_decides_as_the_enumeration(event: str) -> None:
    """ephem finds an event to within milliseconds, depending on where its search
    starts: the occurrence sent after a search back may differ by that much."""
    sched = solar(event, 48.85, 2.35)
    for policy in (Policy(), Policy(missed='all'), Policy(missed='skip', catchup_window=86400 * 2)):
        first = occurrence_after(sched, policy, at(2026, 6, 1))
        assert first is not None
        now = at(2026, 6, 9, 13)
        expected = reference_plan_run(sched, policy, first, now, 0)
        plan = plan_run(sched, policy, first, now, 0)
        assert (plan.missed, plan.skipped, len(plan.sends)) == (
            expected.missed,
            expected.skipped,
            len(expected.sends),
        )
        for got, want in zip(plan.sends, expected.sends):
            assert abs((got - want).total_seconds()) < 1


# --- hypothesis ---------------------------------------------------------------------


@st.composite
def schedules(draw: st.DrawFn, near: datetime) -> BaseSchedule:
    kind = draw(st.sampled_from(['interval', 'relative', 'crontab', 'rrule']))
    if kind in ('interval', 'relative'):
        seconds = draw(
            st.one_of(
                st.sampled_from([1, 59, 60, 61, 90, 600, 3599, 3600, 5400, 86400, 90000]),
                st.floats(0.5, 100_000).map(lambda s: round(s, 3)),
            )
        )
        return every(seconds, relative=kind == 'relative')
    if kind == 'crontab':
        minutes = draw(st.sets(st.integers(0, 59), min_size=1, max_size=6))
        hours = draw(st.one_of(st.just('*'), st.sets(st.integers(0, 23), min_size=1, max_size=4)))
        days = draw(st.sampled_from(['*', '1-5', '0,6']))
        return crontab(
            minute=','.join(map(str, sorted(minutes))),
            hour=hours if hours == '*' else ','.join(map(str, sorted(hours))),
            day_of_week=days,
        )
    freq = draw(st.sampled_from([du.MINUTELY, du.HOURLY, du.DAILY]))
    # dateutil walks a rule from dtstart at every question: keep it near the case.
    offset = timedelta(seconds=draw(st.integers(-3 * 86400, 86400)))
    dtstart = (near + offset).replace(tzinfo=None)
    zone = draw(st.sampled_from(ZONES))
    count = draw(st.one_of(st.none(), st.integers(1, 200)))
    until = None
    if count is None and draw(st.booleans()):
        until = dtstart.replace(tzinfo=zone) + timedelta(days=draw(st.integers(0, 30)))
    return rrule(
        freq,
        dtstart=dtstart.replace(tzinfo=zone),
        interval=draw(st.integers(1, 90)),
        count=count,
        until=until,
    )


@st.composite
def policies(draw: st.DrawFn, moment: datetime) -> Policy:
    def seconds(top: float) -> float | None:
        return draw(st.one_of(st.none(), st.floats(0, top).map(lambda s: round(s, 3))))

    anchor = start_at = end_at = None
    if draw(st.booleans()):
        anchor = moment - timedelta(seconds=draw(st.integers(-(10**6), 10**8)))
    if draw(st.booleans()):
        start_at = moment + timedelta(seconds=draw(st.integers(-86400, 86400)))
    if draw(st.booleans()):
        end_at = moment + timedelta(seconds=draw(st.integers(3600, 10 * 86400)))
        if start_at is not None and end_at <= start_at:
            end_at = start_at + timedelta(hours=1)
    return Policy(
        timezone=draw(st.sampled_from([None, 'Europe/Paris', 'America/New_York'])),
        missed=draw(st.sampled_from([None, 'once', 'skip', 'all'])),
        missed_limit=draw(st.one_of(st.none(), st.integers(0, 30))),
        catchup_window=seconds(86400),
        max_runs=draw(st.one_of(st.none(), st.integers(0, 40))),
        jitter=seconds(7200),
        anchor=anchor,
        start_at=start_at,
        end_at=end_at,
    )


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(data=st.data())
def test_plan_run_decides_as_the_enumeration_generated(data: st.DataObject) -> None:
    start = data.draw(
        st.datetimes(datetime(2025, 1, 1), datetime(2026, 12, 31), timezones=st.just(UTC)),
        label='start',
    )
    sched = data.draw(schedules(start), label='schedule')
    tz = data.draw(st.sampled_from(ZONES), label='tz')
    policy = data.draw(policies(start), label='policy')
    first = occurrence_after(sched, policy, start, tz)
    assume(first is not None)
    assert first is not None
    late = data.draw(st.one_of(st.floats(0, 7200), st.floats(0, 20 * 86400)), label='late')
    now = first + timedelta(seconds=late)
    runs = data.draw(st.integers(0, 10), label='runs')
    try:
        expected = reference_plan_run(sched, policy, first, now, runs, tz, 'redbeat:h', most=400)
    except AssertionError:
        assume(False)  # too many occurrences to list
        raise
    assert_same(plan_run(sched, policy, first, now, runs, tz, 'redbeat:h'), expected, sched, policy)


# --- cost does not grow with the outage ------------------------------------------


def sched_is_hourly_relative(sched: BaseSchedule) -> bool:
    if not isinstance(sched, schedule) or isinstance(sched, (crontab, solar)):
        return False
    return bool(sched.relative and sched.run_every >= timedelta(hours=1))


class Counting:
    """Counts the schedule computations plan_run makes (calls of occurrence_after)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        real = timing.occurrence_after

        def counted(*args: Any, **kwargs: Any) -> datetime | None:
            self.calls += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(timing, 'occurrence_after', counted)


NOW = at(2026, 11, 28, 1, 30, 0, 250_000)


@pytest.mark.parametrize(
    ('sched', 'tz', 'latest'),
    [
        (every(1), UTC, NOW.replace(microsecond=0)),
        (every(90, relative=True), ZoneInfo('Europe/Paris'), at(2026, 11, 28, 1, 30)),
        (every(5400, relative=True), ZoneInfo('Asia/Kolkata'), at(2026, 11, 28, 1, 30)),
        (crontab(), ZoneInfo('America/New_York'), at(2026, 11, 28, 1, 30)),
        (crontab(minute='0', hour='3'), ZoneInfo('Europe/Paris'), at(2026, 11, 27, 2)),
        # dateutil walks a rule from its dtstart at each call: a recent dtstart
        (rrule(du.MINUTELY, interval=7, dtstart=at(2026, 11, 25)), UTC, at(2026, 11, 28, 1, 30)),
    ],
    ids=[
        'every 1 s', 'every 90 s relative', 'every 1.5 h relative, Kolkata', 'crontab *',
        'crontab 03:00 Paris', 'rrule every 7 min',
    ],
)  # fmt: skip
@pytest.mark.parametrize('since', [at(2026, 11, 26, 1, 30), at(2000, 1, 1)], ids=['days', 'years'])
def test_catch_up_after_years_costs_what_a_day_costs(
    monkeypatch: pytest.MonkeyPatch,
    sched: BaseSchedule,
    tz: tzinfo,
    latest: datetime,
    since: datetime,
) -> None:
    """The latest due occurrence is sent, and the work is bounded (a day or 26 years)."""
    counting = Counting(monkeypatch)
    first = occurrence_after(sched, Policy(), since, tz)
    assert first is not None
    counting.calls = 0
    plan = plan_run(sched, Policy(), first, NOW, 0, tz)
    assert plan.sends == (latest,)
    assert plan.last_run_at == NOW  # a catch-up run counts as made now
    assert plan.next_occurrence is not None and plan.next_occurrence > NOW
    if sched_is_hourly_relative(sched) and since.year == 2000 and tz is not UTC:
        # Rounded to local hours in a zone that may change offset: followed one by one.
        assert counting.calls <= timing._MAX_CATCH_UP + 8
        return
    assert counting.calls <= 2 * 64 + timing.COUNT_LIMIT + 3
    if isinstance(sched, schedule) and not isinstance(sched, crontab):
        # Intervals: exact counts, by arithmetic, in a handful of computations.
        assert counting.calls <= 4
        assert plan.skipped > 0 and plan.missed == 0
    elif since.year == 2000:
        assert plan.skipped >= timing.COUNT_LIMIT - 1  # counted up to the limit
    if since.year > 2000 and period(sched) >= 60:  # small enough to list: as the listing
        expected = reference_plan_run(sched, Policy(), first, NOW, 0, tz)
        assert_same(plan, expected, sched, Policy())
        if isinstance(sched, crontab):  # counted by arithmetic: exact
            assert plan.skipped == expected.skipped


def test_interval_counts_are_exact_after_years() -> None:
    first = at(2000, 1, 1)
    now = at(2026, 1, 1, 0, 0, 30)
    due = int((now - first).total_seconds()) // 60 + 1
    plan = plan_run(every(60), Policy(missed='skip', catchup_window=86400), first, now, 0)
    assert plan.sends == (at(2026, 1, 1),)
    assert (plan.missed, plan.skipped) == (due - 1440, 1439)  # 1440 in the last day
    all_plan = plan_run(every(60), Policy(missed='all', missed_limit=3), first, now, 0)
    assert all_plan.sends == (first, first + timedelta(minutes=1), first + timedelta(minutes=2))
    assert (all_plan.missed, all_plan.skipped) == (0, due - 3)
    assert all_plan.last_run_at == at(2026, 1, 1)  # keeps its phase
    assert all_plan.next_occurrence == at(2026, 1, 1, 0, 1)


def test_anchored_interval_after_years_sends_the_latest_grid_point() -> None:
    policy = Policy(anchor=at(2020, 1, 1, 0, 0, 7), missed='skip', catchup_window=600)
    first = occurrence_after(every(60), policy, at(2001, 5, 5))
    assert first is not None
    plan = plan_run(every(60), policy, first, NOW, 0)
    assert plan.sends == (at(2026, 11, 28, 1, 30, 7) - timedelta(minutes=1),)
    assert plan.skipped == 9
    assert plan.next_occurrence == at(2026, 11, 28, 1, 30, 7)


# --- send_at: runs sent late in a long tick ------------------------------------------

D = at(2026, 1, 1, 10)


@pytest.mark.parametrize(
    ('sched', 'policy', 'now', 'send_at', 'last', 'following'),
    [
        # planned 0.8 s late, on time by the half-period rule: recorded at its time
        (every(2), Policy(), D + timedelta(seconds=0.8), None, D, D + timedelta(seconds=2)),
        # the same run leaving 0.8 s later is 1.6 s late: counts as made when it leaves
        (every(2), Policy(), D + timedelta(seconds=0.8), D + timedelta(seconds=1.6),
         D + timedelta(seconds=1.6), D + timedelta(seconds=3.6)),
        # leaving a little later, still within half a period: keeps its phase
        (every(2), Policy(), D + timedelta(seconds=0.2), D + timedelta(seconds=0.9),
         D, D + timedelta(seconds=2)),
        # a send time before now changes nothing
        (every(2), Policy(), D + timedelta(seconds=0.8), D, D, D + timedelta(seconds=2)),
        # crontab and anchored intervals keep fixed times: the next is the first after now
        (crontab(minute='*'), Policy(), D + timedelta(seconds=50), D + timedelta(seconds=122),
         D, D + timedelta(minutes=1)),
        (every(60), Policy(anchor=D), D + timedelta(seconds=40), D + timedelta(seconds=70),
         D, D + timedelta(minutes=1)),
        # skip and all keep the phase of an interval
        (every(2), Policy(missed='all'), D + timedelta(seconds=0.8), D + timedelta(seconds=1.6),
         D, D + timedelta(seconds=2)),
    ],
)  # fmt: skip
def test_send_at_lateness_and_recorded_run(
    sched: BaseSchedule,
    policy: Policy,
    now: datetime,
    send_at: datetime | None,
    last: datetime,
    following: datetime,
) -> None:
    plan = plan_run(sched, policy, D, now, 0, send_at=send_at)
    assert plan.sends == (D,)
    assert (plan.last_run_at, plan.next_occurrence) == (last, following)


@settings(max_examples=300, deadline=None)
@given(
    period=st.floats(0.5, 3600),
    late=st.floats(0, 5),
    delay=st.floats(0, 5),
)
def test_an_interval_run_is_never_bunched_with_its_next(
    period: float, late: float, delay: float
) -> None:
    """For the default policy: the next run is at least half a period after the send."""
    sched = every(round(period, 3))
    now = D + timedelta(seconds=late * sched.run_every.total_seconds())
    send_at = now + timedelta(seconds=delay)
    plan = plan_run(sched, Policy(), D, now, 0, send_at=send_at)
    assert plan.next_occurrence is not None
    margin = (plan.next_occurrence - send_at).total_seconds()
    assert margin >= sched.run_every.total_seconds() / 2 - 1e-6


@pytest.mark.parametrize(
    'sched',
    [
        rrule(du.MINUTELY, dtstart=at(2026, 1, 1, 9)),
        crontab(minute='*'),
        crontab(minute='*/2', hour='*', day_of_week='1-5'),
    ],
    ids=['rrule minutely', 'crontab *', 'crontab weekdays'],
)
@pytest.mark.parametrize('limit', [99, 100, 150, 400])
def test_all_past_the_count_limit_counts_what_it_did_not_send(
    sched: BaseSchedule, limit: int
) -> None:
    """With ``missed_limit`` above COUNT_LIMIT, skipped still counts what was left out."""
    policy = Policy(missed='all', missed_limit=limit)
    expected = check(sched, policy, at(2026, 1, 1, 10), at(2026, 1, 1, 15))
    first = occurrence_after(sched, policy, at(2026, 1, 1, 10))
    assert first is not None
    plan = plan_run(sched, policy, first, at(2026, 1, 1, 15), 0, key='redbeat:k')
    assert plan.sends == expected.sends
    assert (plan.skipped > 0) == (expected.skipped > 0)


def test_anchored_interval_counts_are_exact_after_years() -> None:
    policy = Policy(anchor=at(2020, 1, 1, 0, 0, 7))
    first = occurrence_after(every(60), policy, at(2000, 1, 1))
    assert first == at(2000, 1, 1, 0, 0, 7)
    plan = plan_run(every(60), policy, first, NOW, 0)
    latest = at(2026, 11, 28, 1, 29, 7)
    assert plan.sends == (latest,)
    assert plan.skipped == (latest - first) // timedelta(minutes=1)  # all due but one
    assert plan.next_occurrence == at(2026, 11, 28, 1, 30, 7)


LORD_HOWE = ZoneInfo('Australia/Lord_Howe')


@pytest.mark.parametrize('seconds', [5400, 7200, 9000, 60, 90, 150])
@pytest.mark.parametrize(
    'start',
    [at(2026, 4, 4, 10), at(2026, 10, 3, 10), at(2026, 6, 1), at(2026, 3, 1)],
    ids=['dst ends', 'dst starts', 'winter', 'weeks across the end'],
)
def test_relative_intervals_across_a_half_hour_dst_change(start: datetime, seconds: int) -> None:
    """Lord Howe Island moves its clocks by 30 minutes: local hours change UTC grid."""
    sched = every(seconds, relative=True)
    days = 40 if start.month == 3 else 1
    for policy in (Policy(), Policy(missed='all'), Policy(missed='skip', catchup_window=7200)):
        first = occurrence_after(sched, policy, start, LORD_HOWE)
        assert first is not None
        now = start + timedelta(days=days)
        expected = reference_plan_run(sched, policy, first, now, 0, LORD_HOWE)
        assert plan_run(sched, policy, first, now, 0, LORD_HOWE) == expected


# --- the interval fast path ------------------------------------------------------------


@settings(max_examples=1000, deadline=None)
@given(
    seconds=st.one_of(
        st.sampled_from([0.001, 1, 59, 60, 3600, 86400, 3_153_600_000]),
        st.floats(0.001, 10**7).map(lambda s: round(s, 3)),
    ),
    late=st.one_of(st.floats(0, 3), st.floats(0, 10**6), st.integers(0, 10**9)),
    delay=st.one_of(st.none(), st.floats(-5, 5), st.floats(0, 10**5)),
    runs=st.integers(0, 12),
    policy=st.builds(
        Policy,
        missed=st.sampled_from([None, 'once']),
        max_runs=st.one_of(st.none(), st.integers(0, 14)),
        jitter=st.sampled_from([None, 0, 0.0]),
        timezone=st.sampled_from([None, 'Europe/Paris']),
        history=st.sampled_from([None, 3]),
        on_finish=st.sampled_from([None, 'delete']),
    ),
    tz=st.sampled_from(ZONES),
)
def test_interval_fast_path_plans_as_the_general_path(
    seconds: float,
    late: float,
    delay: float | None,
    runs: int,
    policy: Policy,
    tz: tzinfo,
) -> None:
    """Unanchored intervals under a policy that changes nothing Celery does: the
    arithmetic of _interval_run decides exactly what the general path decides."""
    from unittest import mock

    sched = every(seconds)
    first = at(2026, 3, 29, 0, 59, 58, 999_999)
    now = first + timedelta(seconds=late * seconds if late < 3 else late)
    send_at = None if delay is None else now + timedelta(seconds=delay)
    fast = plan_run(sched, policy, first, now, runs, tz, 'redbeat:f', send_at)
    with mock.patch.object(timing, '_plain', return_value=False):
        general = plan_run(sched, policy, first, now, runs, tz, 'redbeat:f', send_at)
    assert fast == general
    assert timing._plain(policy)
