"""converters: the one parser of time zones, datetimes and schedule options (tables, no I/O)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from celery.schedules import crontab, schedule

from redbeat import converters
from redbeat.config import RedBeatConfig
from redbeat.errors import ConfigurationError
from redbeat.schedules import rrule

UTC = timezone.utc
PARIS = ZoneInfo('Europe/Paris')
NOW = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ('name', 'expected'),
    [(None, UTC), ('UTC', UTC), ('Europe/Paris', PARIS), (PARIS, PARIS)],
)
def test_zone(name: object, expected: object) -> None:
    assert converters.zone(name) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize('name', ['Mars/Olympus', '', '../etc/passwd', 5])
def test_unknown_zone(name: object) -> None:
    with pytest.raises(converters.UnknownZone, match='unknown time zone'):
        converters.zone(name)  # type: ignore[arg-type]


def test_zone_option_names_the_option() -> None:
    with pytest.raises(converters.UnknownZone, match=r"--tz 'Nowhere' is not a known time zone"):
        converters.zone_option('Nowhere')


@pytest.mark.parametrize(
    ('text', 'expected'),
    [
        ('2027-01-01T09:00', datetime(2027, 1, 1, 9, 0)),
        ('2027-01-01T09:00+02:00', datetime(2027, 1, 1, 7, 0, tzinfo=UTC)),
    ],
)
def test_parse_datetime(text: str, expected: datetime) -> None:
    assert converters.parse_datetime('--at', text) == expected


def test_parse_datetime_names_the_label() -> None:
    with pytest.raises(converters.ConversionError, match=r"start_at 'soon' is not a date"):
        converters.parse_datetime('start_at', 'soon')


@pytest.mark.parametrize(
    ('naive', 'utc', 'skipped'),
    [
        (datetime(2026, 3, 29, 2, 30), datetime(2026, 3, 29, 1, 30, tzinfo=UTC), True),  # DST gap
        (datetime(2026, 3, 29, 4, 0), datetime(2026, 3, 29, 2, 0, tzinfo=UTC), False),
    ],
)
def test_wall_time(naive: datetime, utc: datetime, skipped: bool) -> None:
    moment, was_skipped = converters.wall_time(naive, PARIS)
    assert (moment, was_skipped) == (utc, skipped)


def test_parse_schedule_each_kind() -> None:
    parse = converters.parse_schedule
    every = parse('90s', None, None, None, None, NOW)
    assert isinstance(every, schedule) and every.run_every == timedelta(seconds=90)
    assert isinstance(parse(None, '0 3 * * *', None, None, None, NOW), crontab)
    daily = parse(None, None, 'FREQ=DAILY;BYHOUR=3', None, 'Europe/Paris', NOW)
    assert isinstance(daily, rrule)
    assert daily.next_after(NOW, PARIS) == datetime(2026, 3, 29, 3, 0, tzinfo=PARIS)
    once = parse(None, None, None, '2027-01-01T09:00', 'Europe/Paris', NOW)
    assert isinstance(once, rrule) and once.count == 1
    assert parse(None, None, None, None, None, NOW) is None


@pytest.mark.parametrize(
    ('options', 'error', 'message'),
    [
        (('1m', '* * * * *', None, None, None), converters.Conflict, 'give one schedule'),
        ((None, '* * *', None, None, None), converters.ConversionError, 'needs 5 fields'),
        (('soon', None, None, None, None), converters.ConversionError, '--every'),
        ((None, None, 'FREQ=SOMETIMES', None, None), converters.ConversionError, 'not a valid'),
        ((None, None, None, '2020-01-01T00:00', None), converters.ConversionError, 'in the past'),
        ((None, None, None, '2027-01-01T00:00Z', 'UTC'), converters.Conflict, 'UTC offset'),
    ],
)
def test_parse_schedule_refuses(options: tuple, error: type, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(error, match=message):
        converters.parse_schedule(*options, NOW)


def test_a_skipped_wall_time_is_noted() -> None:
    notes: list[str] = []
    converters.parse_schedule(
        None, None, None, '2027-03-28T02:30', 'Europe/Paris', NOW, notes.append
    )
    assert notes == [
        '--at 2027-03-28T02:30 does not exist in Europe/Paris (the clocks skip it); '
        'that moment is 2027-03-28 03:30 CEST'
    ]


@pytest.mark.parametrize(
    ('url', 'prefix', 'expected'),
    [
        ('redis://localhost/0', None, 'redbeat:'),
        ('redis-cluster://localhost:7000', None, '{redbeat}:'),
        ('redis-cluster://localhost:7000', '{mine}:', '{mine}:'),
    ],
)
def test_config_from_url_prefix(url: str, prefix: str | None, expected: str) -> None:
    config = RedBeatConfig.from_url(url, prefix)
    assert (config.key_prefix, config.lock_key) == (expected, f'{expected}:lock')


@pytest.mark.parametrize(
    ('url', 'prefix', 'message'),
    [
        ('http://example.com', None, 'is not a Redis URL'),
        ('redis://localhost/0', '', 'must be a non-empty string'),
        ('redis-cluster://localhost:7000', 'plain:', 'has no hash tag'),  # as from_app checks
    ],
)
def test_config_from_url_checks_as_from_app(url: str, prefix: str | None, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        RedBeatConfig.from_url(url, prefix)


@pytest.mark.parametrize(
    ('text', 'expected'),
    [
        ('2027-01-01T00:00Z', datetime(2027, 1, 1, tzinfo=timezone.utc)),
        ('2027-01-01T09:00+02:00', datetime(2027, 1, 1, 7, tzinfo=timezone.utc)),
        ('20270101T0900', datetime(2027, 1, 1, 9)),
        ('2027-01-01 09:00:00.5', datetime(2027, 1, 1, 9, 0, 0, 500000)),
    ],
)
def test_iso_text_reads_alike_on_every_python(text: str, expected: datetime) -> None:
    """``Z`` and the basic format are read by Python 3.11's fromisoformat only: on 3.9
    and 3.10 :func:`converters.from_iso` reads them all the same, offsets as ``timezone``."""
    moment = converters.from_iso(text)
    assert moment == expected
    assert (moment.tzinfo is None) is (expected.tzinfo is None)
    assert moment.tzinfo is None or isinstance(moment.tzinfo, timezone)
