"""Pure schedule math (redbeat.timing): tables of fixed datetimes, no clock, no Redis."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from celery.schedules import BaseSchedule, crontab, schedule
from celery.utils.time import delta_resolution
from dateutil import rrule as du

from redbeat import timing
from redbeat.policy import Policy
from redbeat.schedules import rrule

UTC = timezone.utc
PARIS = ZoneInfo('Europe/Paris')
NEW_YORK = ZoneInfo('America/New_York')


def at(*fields: int, tz: object = UTC) -> datetime:
    return datetime(*fields, tzinfo=tz)  # type: ignore[arg-type]


def every(seconds: float, relative: bool = False) -> schedule:
    return schedule(run_every=timedelta(seconds=seconds), relative=relative)


# --- interval ------------------------------------------------------------------


@pytest.mark.parametrize(
    ('seconds', 'last', 'expected'),
    [
        (60, at(2026, 1, 1, 10, 0, 0), at(2026, 1, 1, 10, 1, 0)),
        (0.25, at(2026, 1, 1, 10, 0, 0, 500_000), at(2026, 1, 1, 10, 0, 0, 750_000)),
        (3600, at(2026, 12, 31, 23, 30), at(2027, 1, 1, 0, 30)),
        (86400 * 7, at(2024, 2, 25, 12), at(2024, 3, 3, 12)),  # leap February
    ],
)
def test_interval_next_is_last_run_plus_interval(
    seconds: float, last: datetime, expected: datetime
) -> None:
    assert timing.next_after(every(seconds), last) == expected


def test_interval_next_accepts_a_zoned_last_run() -> None:
    last = at(2026, 3, 29, 1, 30, tz=PARIS)  # 00:30 UTC, just before spring forward
    assert timing.next_after(every(3600), last) == at(2026, 3, 29, 1, 30)


@pytest.mark.parametrize(
    ('seconds', 'last', 'expected'),
    [
        # under a minute: only microseconds dropped
        (30, at(2026, 1, 1, 10, 0, 10, 900_000), at(2026, 1, 1, 10, 0, 40)),
        # >= a minute: rounded down to the minute
        (90, at(2026, 1, 1, 10, 0, 45, 1), at(2026, 1, 1, 10, 2, 0)),
        (60, at(2026, 1, 1, 10, 0, 59), at(2026, 1, 1, 10, 1, 0)),
        # >= an hour: rounded down to the hour
        (3600, at(2026, 1, 1, 10, 59, 59), at(2026, 1, 1, 11, 0, 0)),
        (5400, at(2026, 1, 1, 10, 20), at(2026, 1, 1, 11, 0, 0)),
        # >= a day: rounded down to midnight
        (86400, at(2026, 1, 1, 23, 59, 59), at(2026, 1, 2, 0, 0, 0)),
        (86400 * 2, at(2026, 12, 31, 8, 15), at(2027, 1, 2, 0, 0, 0)),
    ],
)
def test_relative_interval_rounds_like_celery(
    seconds: float, last: datetime, expected: datetime
) -> None:
    delta = timedelta(seconds=seconds)
    celery_rounded = delta_resolution(last + delta, delta).replace(microsecond=0)
    assert celery_rounded == expected  # the table agrees with Celery itself
    assert timing.next_after(every(seconds, relative=True), last) == expected


def test_relative_interval_rounds_in_the_given_zone() -> None:
    # A day-long relative interval rounds to local midnight, not UTC midnight.
    last = at(2026, 1, 1, 12)  # 13:00 Paris
    assert timing.next_after(every(86400, relative=True), last, PARIS) == at(2026, 1, 1, 23)


# --- crontab (UTC) -------------------------------------------------------------


@pytest.mark.parametrize(
    ('cron', 'after', 'expected'),
    [
        # minute field
        (crontab(minute='*/15'), at(2026, 5, 4, 10, 7), at(2026, 5, 4, 10, 15)),
        (crontab(minute='*/15'), at(2026, 5, 4, 10, 15), at(2026, 5, 4, 10, 30)),  # strictly after
        (crontab(minute='*/15'), at(2026, 5, 4, 10, 14, 59, 999_999), at(2026, 5, 4, 10, 15)),
        (crontab(minute='59'), at(2026, 5, 4, 23, 59, 30), at(2026, 5, 5, 0, 59)),
        # hour field
        (crontab(minute='0', hour='3'), at(2026, 5, 4, 2, 59), at(2026, 5, 4, 3, 0)),
        (crontab(minute='0', hour='3'), at(2026, 5, 4, 3, 0), at(2026, 5, 5, 3, 0)),
        (crontab(minute='30', hour='8-10'), at(2026, 5, 4, 9, 31), at(2026, 5, 4, 10, 30)),
        # day of week (2026-05-04 is a Monday)
        (crontab(minute='0', hour='9', day_of_week='fri'), at(2026, 5, 4, 12), at(2026, 5, 8, 9)),
        (crontab(minute='0', hour='9', day_of_week='sun'), at(2026, 5, 4), at(2026, 5, 10, 9)),
        (crontab(minute='0', hour='9', day_of_week='mon'), at(2026, 5, 4, 9), at(2026, 5, 11, 9)),
        # day of month
        (crontab(minute='0', hour='0', day_of_month='31'), at(2026, 4, 1), at(2026, 5, 31)),
        (crontab(minute='0', hour='0', day_of_month='1'), at(2026, 1, 31, 12), at(2026, 2, 1)),
        # month of year
        (crontab(minute='0', hour='0', day_of_month='1', month_of_year='7'),
         at(2026, 7, 1, 0, 0, 1), at(2027, 7, 1)),
        (crontab(minute='0', hour='12', month_of_year='2-3'), at(2026, 1, 15), at(2026, 2, 1, 12)),
        # Celery's AND rule: the 13th *and* a Friday, not either
        (crontab(minute='0', hour='0', day_of_month='13', day_of_week='fri'),
         at(2026, 1, 1), at(2026, 2, 13)),
        (crontab(minute='0', hour='0', day_of_month='13', day_of_week='fri'),
         at(2026, 3, 13), at(2026, 11, 13)),
        # Feb 29: the next leap year; on a given weekday, years away
        (crontab(minute='0', hour='0', day_of_month='29', month_of_year='2'),
         at(2026, 1, 1), at(2028, 2, 29)),
        (crontab(minute='0', hour='0', day_of_month='29', month_of_year='2', day_of_week='mon'),
         at(2026, 1, 1), at(2044, 2, 29)),
        # year rollover
        (crontab(minute='0', hour='0', day_of_month='1', month_of_year='1'),
         at(2026, 12, 31, 23, 59, 59), at(2027, 1, 1)),
        (crontab(), at(2026, 12, 31, 23, 59), at(2027, 1, 1, 0, 0)),
    ],
)  # fmt: skip
def test_crontab_next_utc(cron: crontab, after: datetime, expected: datetime) -> None:
    found = timing.next_after(cron, after)
    assert found == expected
    assert found is not None and found.tzinfo is not None


def test_crontab_and_rule_days_really_are_fridays_the_13th() -> None:
    cron = crontab(minute='0', hour='0', day_of_month='13', day_of_week='fri')
    moment = at(2026, 1, 1)
    for _ in range(6):
        found = timing.next_after(cron, moment)
        assert found is not None
        assert found.day == 13 and found.weekday() == 4
        moment = found


# --- crontab across DST --------------------------------------------------------


@pytest.mark.parametrize(
    ('cron', 'tz', 'after', 'expected'),
    [
        # ordinary day before the change: 02:30 CET = 01:30 UTC
        (crontab('30', '2'), PARIS, at(2026, 3, 28), at(2026, 3, 28, 1, 30)),
        # spring forward: 02:30 does not exist on 2026-03-29; runs at 03:00 CEST
        (crontab('30', '2'), PARIS, at(2026, 3, 28, 1, 30), at(2026, 3, 29, 1, 0)),
        # and only once: the next is 02:30 CEST the day after
        (crontab('30', '2'), PARIS, at(2026, 3, 29, 1, 0), at(2026, 3, 30, 0, 30)),
        # New York springs forward 2026-03-08: 02:30 -> 03:00 EDT = 07:00 UTC
        (crontab('30', '2'), NEW_YORK, at(2026, 3, 7, 7, 30), at(2026, 3, 8, 7, 0)),
        (crontab('30', '2'), NEW_YORK, at(2026, 3, 8, 7, 0), at(2026, 3, 9, 6, 30)),
        # fall back: Paris 2026-10-25, 02:30 happens twice; the first (CEST) is the one
        (crontab('30', '2'), PARIS, at(2026, 10, 24, 12), at(2026, 10, 25, 0, 30)),
        (crontab('30', '2'), PARIS, at(2026, 10, 25, 0, 30), at(2026, 10, 26, 1, 30)),
        # asked from inside the repeated hour (02:10 CET, second pass): not again today
        (crontab('45', '2'), PARIS, at(2026, 10, 25, 1, 10), at(2026, 10, 26, 1, 45)),
        # New York falls back 2026-11-01: 01:30 EDT (05:30 UTC), not 01:30 EST
        (crontab('30', '1'), NEW_YORK, at(2026, 10, 31, 12), at(2026, 11, 1, 5, 30)),
        (crontab('30', '1'), NEW_YORK, at(2026, 11, 1, 5, 30), at(2026, 11, 2, 6, 30)),
    ],
)  # fmt: skip
def test_crontab_across_dst(
    cron: crontab, tz: ZoneInfo, after: datetime, expected: datetime
) -> None:
    assert timing.next_after(cron, after, tz) == expected


def _run(cron: crontab, start: datetime, tz: ZoneInfo, stop: datetime) -> list[datetime]:
    out = []
    moment = start
    for _ in range(200):  # bounded
        found = timing.next_after(cron, moment, tz)
        assert found is not None and found > moment
        if found > stop:
            return out
        out.append(found)
        moment = found
    raise AssertionError('too many occurrences')


def test_daily_crontab_runs_once_on_each_dst_day() -> None:
    cron = crontab('30', '2')
    runs = _run(cron, at(2026, 3, 27), PARIS, at(2026, 3, 31))
    assert [r.astimezone(PARIS).date().day for r in runs] == [27, 28, 29, 30]
    runs = _run(cron, at(2026, 10, 23), PARIS, at(2026, 10, 27))
    assert [r.astimezone(PARIS).date().day for r in runs] == [23, 24, 25, 26]


def test_hourly_crontab_across_fall_back_runs_each_wall_hour_once() -> None:
    # Paris 2026-10-25: wall clock 02:00 happens at 00:00 and at 01:00 UTC.
    runs = _run(crontab('0', '*'), at(2026, 10, 24, 21, 30), PARIS, at(2026, 10, 25, 4, 30))
    walls = [r.astimezone(PARIS).strftime('%H:%M%z') for r in runs]
    assert walls == ['00:00+0200', '01:00+0200', '02:00+0200', '03:00+0100',
                     '04:00+0100', '05:00+0100']  # fmt: skip
    assert len(set(runs)) == len(runs)


def test_hourly_crontab_across_spring_forward_has_no_duplicate() -> None:
    runs = _run(crontab('0', '*'), at(2026, 3, 28, 22, 30), PARIS, at(2026, 3, 29, 3, 30))
    assert runs == [at(2026, 3, 28, 23), at(2026, 3, 29, 0), at(2026, 3, 29, 1),
                    at(2026, 3, 29, 2), at(2026, 3, 29, 3)]  # fmt: skip
    # 01:00 UTC is 03:00 CEST: the missing 02:00 and the real 03:00 are one run.
    assert runs[2].astimezone(PARIS).hour == 3


# --- rrule ---------------------------------------------------------------------


def test_rrule_next_and_count_exhausted() -> None:
    rule = rrule(du.DAILY, dtstart=at(2026, 1, 1, 9), count=3)
    assert timing.next_after(rule, at(2025, 12, 31)) == at(2026, 1, 1, 9)
    assert timing.next_after(rule, at(2026, 1, 1, 9)) == at(2026, 1, 2, 9)
    assert timing.next_after(rule, at(2026, 1, 2, 9)) == at(2026, 1, 3, 9)
    assert timing.next_after(rule, at(2026, 1, 3, 9)) is None


def test_rrule_until() -> None:
    rule = rrule('HOURLY', dtstart=at(2026, 1, 1, 0), interval=6, until=at(2026, 1, 1, 12))
    assert timing.next_after(rule, at(2026, 1, 1, 5)) == at(2026, 1, 1, 6)
    assert timing.next_after(rule, at(2026, 1, 1, 6)) == at(2026, 1, 1, 12)
    assert timing.next_after(rule, at(2026, 1, 1, 12)) is None


def test_rrule_zoned_dtstart_gives_utc_result() -> None:
    rule = rrule(du.DAILY, dtstart=at(2026, 1, 1, 9, tz=PARIS))
    found = timing.next_after(rule, at(2026, 1, 5, 12))
    assert found == at(2026, 1, 6, 8)
    assert found is not None and found.utcoffset() == timedelta(0)


def test_rrule_naive_dtstart_is_utc() -> None:
    rule = rrule(du.WEEKLY, dtstart=datetime(2026, 1, 1, 9), byweekday=du.FR)
    assert timing.next_after(rule, at(2026, 1, 1)) == at(2026, 1, 2, 9)


def test_rrule_rejects_unknown_frequency() -> None:
    with pytest.raises(ValueError, match='freq'):
        rrule('FORTNIGHTLY', dtstart=at(2026, 1, 1))


# --- advance / due_after_change -----------------------------------------------


def run_once(
    sched: BaseSchedule, scheduled_at: datetime, now: datetime
) -> tuple[datetime, datetime | None]:
    """``(last_run_at, next due)`` once the occurrence at ``scheduled_at`` is sent
    under the default policy (missed occurrences sent once)."""
    plan = timing.plan_run(sched, Policy(), scheduled_at, now, 0)
    return plan.last_run_at, plan.next_occurrence


@pytest.mark.parametrize(
    ('sched', 'scheduled_at', 'now', 'expected'),
    [
        # on time (or up to half a period late): recorded at its scheduled time
        (every(60), at(2026, 1, 1, 10), at(2026, 1, 1, 10, 0, 0, 300_000),
         (at(2026, 1, 1, 10), at(2026, 1, 1, 10, 1))),
        (every(60), at(2026, 1, 1, 10), at(2026, 1, 1, 10, 0, 30),
         (at(2026, 1, 1, 10), at(2026, 1, 1, 10, 1))),
        # more than half a period late: counts as run now (no two runs bunched)
        (every(60), at(2026, 1, 1, 10), at(2026, 1, 1, 10, 0, 59),
         (at(2026, 1, 1, 10, 0, 59), at(2026, 1, 1, 10, 1, 59))),
        # the following occurrence is already due: missed; one run, continue after now
        (every(60), at(2026, 1, 1, 10), at(2026, 1, 1, 10, 1),
         (at(2026, 1, 1, 10, 1), at(2026, 1, 1, 10, 2))),
        (every(60), at(2026, 1, 1, 10), at(2026, 1, 1, 10, 3, 30),
         (at(2026, 1, 1, 10, 3, 30), at(2026, 1, 1, 10, 4, 30))),
        (crontab(minute='*/5'), at(2026, 1, 1, 10), at(2026, 1, 1, 10, 17),
         (at(2026, 1, 1, 10, 17), at(2026, 1, 1, 10, 20))),
        (crontab(minute='*/5'), at(2026, 1, 1, 10), at(2026, 1, 1, 10, 2),
         (at(2026, 1, 1, 10), at(2026, 1, 1, 10, 5))),
        # last occurrence of a finite rule: no next
        (rrule(du.DAILY, dtstart=at(2026, 1, 1), count=1), at(2026, 1, 1), at(2026, 1, 1, 0, 1),
         (at(2026, 1, 1), None)),
    ],
)  # fmt: skip
def test_advance(
    sched: object,
    scheduled_at: datetime,
    now: datetime,
    expected: tuple[datetime, datetime | None],
) -> None:
    assert run_once(sched, scheduled_at, now) == expected  # type: ignore[arg-type]


def test_advance_next_is_always_after_now() -> None:
    sched = every(10)
    scheduled = at(2026, 1, 1, 10)
    for late in (0, 5, 9.999, 10, 30, 3600):
        now = scheduled + timedelta(seconds=late)
        last, following = run_once(sched, scheduled, now)
        assert following is not None and following > now
        assert last <= now


@pytest.mark.parametrize(
    ('sched', 'last_run_at', 'now', 'expected'),
    [
        # never run: first occurrence after the save, never "now"
        (every(60), None, at(2026, 1, 1, 10, 0, 0, 250_000), at(2026, 1, 1, 10, 1, 0, 250_000)),
        (crontab(minute='0', hour='3'), None, at(2026, 1, 1, 10), at(2026, 1, 2, 3)),
        # run before: next occurrence after the last run, even if in the past
        (every(60), at(2026, 1, 1, 9), at(2026, 1, 1, 10), at(2026, 1, 1, 9, 1)),
        (every(3600), at(2026, 1, 1, 9, 30), at(2026, 1, 1, 10), at(2026, 1, 1, 10, 30)),
        (crontab(minute='0', hour='3'), at(2026, 1, 1, 3), at(2026, 1, 1, 10), at(2026, 1, 2, 3)),
    ],
)  # fmt: skip
def test_due_after_change(
    sched: object, last_run_at: datetime | None, now: datetime, expected: datetime
) -> None:
    assert timing.due_after_change(sched, last_run_at, now) == expected  # type: ignore[arg-type]


# --- scores ----------------------------------------------------------------------


def test_score_constants() -> None:
    assert timing.NEVER == -1
    assert timing.NOW == 0
    assert timing.to_score(None) == -1
    assert timing.from_score(timing.NEVER) is None
    assert timing.from_score(timing.NOW) == datetime(1970, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    'moment',
    [
        at(2026, 1, 1, 10, 0, 0, 1),
        at(2026, 1, 1, 10, 0, 0, 123_456),
        at(2026, 1, 1, 10, 0, 0, 999_999),
        at(2038, 1, 19, 3, 14, 8, 500_000),
        at(2026, 7, 1, 12, 0, 0, 250_000, tz=PARIS),
    ],
)
def test_score_round_trip_keeps_sub_second_precision(moment: datetime) -> None:
    score = timing.to_score(moment)
    assert score != int(score)
    back = timing.from_score(score)
    assert back is not None
    assert abs((back - moment).total_seconds()) < 2e-6
    assert back.utcoffset() == timedelta(0)


def test_to_score_naive_is_utc_and_orders_within_a_second() -> None:
    assert timing.to_score(datetime(1970, 1, 1, 0, 0, 1, 500_000)) == 1.5
    first = timing.to_score(at(2026, 1, 1, 10, 0, 0, 100_000))
    second = timing.to_score(at(2026, 1, 1, 10, 0, 0, 200_000))
    assert first < second
    assert second - first == pytest.approx(0.1, abs=1e-5)


@pytest.mark.parametrize('hours', [1, 2, 5])
def test_relative_interval_always_moves_on_across_a_half_hour_fall_back(hours: int) -> None:
    """Lord Howe falls back 30 minutes (02:00 to 01:30): rounded down to the hour, the
    next run after 01:00 would be 01:00 itself, sent again for ever; it moves on."""
    zone = ZoneInfo('Australia/Lord_Howe')
    sched = schedule(timedelta(hours=hours), relative=True)
    last = datetime(2026, 4, 4, 10, 0, tzinfo=timezone.utc)  # 21:00 the evening before
    for _ in range(12):
        following = timing.interval_next(sched, last, zone)
        assert following > last
        assert following - last <= timedelta(hours=hours)
        last = following
    assert last > datetime(2026, 4, 4, 16, 0, tzinfo=timezone.utc)  # past the change
