"""Pure tables for :mod:`redbeat.humanize`: fixed datetimes, no Redis."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from celery.schedules import crontab, schedule

from redbeat import humanize
from redbeat.schedules import rrule

NOW = datetime(2026, 11, 22, 4, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ('text', 'seconds'),
    [('30s', 30), ('5m', 300), ('5min', 300), ('1h', 3600), ('1d', 86400), ('1h30m', 5400),
     ('90', 90), ('1.5s', 1.5), (' 2H ', 7200)],
)  # fmt: skip
def test_parse_duration(text: str, seconds: float) -> None:
    assert humanize.parse_duration(text) == seconds


@pytest.mark.parametrize('text', ['', 'soon', '5x', '0s', '-5', '5m later'])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        humanize.parse_duration(text)


@pytest.mark.parametrize(
    ('sched', 'words'),
    [
        (schedule(timedelta(minutes=5)), 'every 5 min'),
        (schedule(timedelta(seconds=30)), 'every 30 s'),
        (schedule(timedelta(seconds=5400)), 'every 1 h 30 min'),
        (schedule(timedelta(days=1)), 'every 1 d'),
        (crontab(minute='*/5'), 'every 5 min'),
        (crontab(), 'every min'),
        (crontab(minute='0', hour='3', day_of_week='1'), 'at 03:00 Mon'),
        (crontab(minute='30', hour='3,15'), 'at 03:30, 15:30'),
        (crontab(minute='15'), 'hourly at :15'),
        (crontab(minute='0', hour='3', day_of_month='1'), 'cron 0 3 1 * *'),
        (crontab(minute='0', hour='9-17', day_of_week='mon-fri'), 'cron 0 9-17 * * mon-fri'),
        (rrule('DAILY', dtstart=NOW, byhour=3), 'rrule FREQ=DAILY;BYHOUR=3'),
        (rrule('DAILY', dtstart=NOW, count=1), 'once at 2026-11-22 04:00:00 UTC'),
    ],
)
def test_describe(sched: object, words: str) -> None:
    assert humanize.describe(sched) == words


@pytest.mark.parametrize(
    ('moment', 'words'),
    [
        (NOW + timedelta(minutes=4), 'in 4 min'),
        (NOW - timedelta(hours=2), '2 h ago'),
        (NOW + timedelta(days=1, hours=3, minutes=4, seconds=5), 'in 1 d 3 h'),
        (NOW + timedelta(milliseconds=300), 'now'),
        (None, 'never'),
    ],
)
def test_relative(moment: datetime | None, words: str) -> None:
    assert humanize.relative(moment, NOW) == words


@pytest.mark.parametrize(
    ('due', 'score', 'words'),
    [
        (NOW + timedelta(minutes=5), 1.0, 'in 5 min (2026-11-22 04:05:00 UTC)'),
        (NOW - timedelta(minutes=5), 1.0, 'due since 5 min (2026-11-22 03:55:00 UTC)'),
        (datetime(1970, 1, 1, tzinfo=timezone.utc), 0.0, 'due now'),
        (None, -1.0, 'never'),
        (None, None, 'not scheduled'),
    ],
)
def test_next_run(due: datetime | None, score: float | None, words: str) -> None:
    assert humanize.next_run(due, score, NOW) == words


def test_absolute_in_a_zone_names_the_abbreviation_in_force() -> None:
    from zoneinfo import ZoneInfo

    paris = ZoneInfo('Europe/Paris')
    before = datetime(2026, 3, 29, 0, 30, tzinfo=timezone.utc)
    after = datetime(2026, 3, 29, 1, 0, tzinfo=timezone.utc)
    assert humanize.absolute(before, paris) == '2026-03-29 01:30:00 CET'
    assert humanize.absolute(after, paris) == '2026-03-29 03:00:00 CEST'
    assert humanize.absolute(after, timezone.utc) == '2026-03-29 01:00:00 UTC'
    assert humanize.absolute(after) == '2026-03-29 01:00:00 UTC'


def test_describe_policy_lists_the_fields_that_are_set() -> None:
    from redbeat.policy import Policy

    assert humanize.describe_policy(Policy()) == []
    words = humanize.describe_policy(
        Policy(timezone='Europe/Paris', missed='all', missed_limit=3, catchup_window=600,
               end_at=datetime(2026, 7, 1, tzinfo=timezone.utc), max_runs=2,
               on_finish='delete', jitter=1.5, history=0)
    )  # fmt: skip
    assert words == [
        ('time zone', 'Europe/Paris'),
        ('missed runs', 'all (at most 3)'),
        ('catch-up', 'within 10 min'),
        ('ends', '2026-07-01 02:00:00 CEST'),
        ('max runs', '2'),
        ('when done', 'delete'),
        ('jitter', 'up to 1.5 s'),
        ('history', 'keeps 0'),
    ]


@pytest.mark.parametrize(('text', 'seconds'), [('0', 0.0), ('0s', 0.0), ('30s', 30.0)])
def test_parse_duration_allow_zero(text: str, seconds: float) -> None:
    assert humanize.parse_duration(text, allow_zero=True) == seconds


@pytest.mark.parametrize('text', ['-1', 'inf', 'nan'])
def test_parse_duration_allow_zero_still_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        humanize.parse_duration(text, allow_zero=True)
