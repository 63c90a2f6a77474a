"""cron_next remembers its answers per crontab object, instant and zone: never another's."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from celery.schedules import crontab
from dateutil import tz as dateutil_tz

from redbeat import timing

START = datetime(2026, 3, 28, 23, 30, tzinfo=timezone.utc)  # Paris springs forward the next night


def test_answers_are_the_searchs_own_for_every_instant_and_zone() -> None:
    every_quarter, at_two = crontab(minute='*/15'), crontab(minute='0', hour='2')
    for tz in (timezone.utc, ZoneInfo('Europe/Paris'), dateutil_tz.gettz('Europe/Paris')):
        for step in range(0, 48 * 60, 7):
            moment = START + timedelta(minutes=step)
            for c in (every_quarter, at_two):
                fresh = timing._cron_search(c, moment, tz)
                assert timing.cron_next(c, moment, tz) == fresh
                assert timing.cron_next(c, moment, tz) == fresh  # the remembered answer


def test_two_crontabs_asked_the_same_instant_get_their_own_answer() -> None:
    hourly, daily = crontab(minute='0'), crontab(minute='0', hour='5')
    assert timing.cron_next(hourly, START) == datetime(2026, 3, 29, 0, 0, tzinfo=timezone.utc)
    assert timing.cron_next(daily, START) == datetime(2026, 3, 29, 5, 0, tzinfo=timezone.utc)


def test_one_crontab_in_two_zones_gets_each_zones_answer() -> None:
    daily = crontab(minute='0', hour='5')
    utc_answer = timing.cron_next(daily, START, timezone.utc)
    paris_answer = timing.cron_next(daily, START, ZoneInfo('Europe/Paris'))
    assert utc_answer == datetime(2026, 3, 29, 5, 0, tzinfo=timezone.utc)
    assert paris_answer == datetime(2026, 3, 29, 3, 0, tzinfo=timezone.utc)  # 05:00 CEST


def test_a_new_crontab_never_gets_a_gone_ones_answer() -> None:
    # Objects made and dropped in a loop often reuse one id: the answer kept
    # with the old object must not be handed to the new one.
    for hour in range(24):
        c = crontab(minute='0', hour=str(hour))
        found = timing.cron_next(c, START)
        assert found is not None and found.hour == hour
        del c


def test_the_answers_kept_are_bounded() -> None:
    c = crontab(minute='*')
    for step in range(timing._CRON_ANSWERS_MAX + 10):
        timing.cron_next(c, START + timedelta(seconds=step))
    assert 0 < len(timing._CRON_ANSWERS) <= timing._CRON_ANSWERS_MAX
