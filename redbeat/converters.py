"""Text to values, in one place: time zones, datetimes and schedules as people write them.

The command line, the management API, the policy checks and the codec read
the same things; they parse them here and word the errors for their users
(an option, a field).  Pure: no I/O, no clock (``now`` is a parameter).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from celery.schedules import BaseSchedule, crontab, schedule
from dateutil import rrule as du
from dateutil.parser import isoparse

from . import humanize
from .schedules import rrule

#: What a date and time looks like, in error messages.
DATETIME_EXAMPLE = '2027-01-01T09:00'


class ConversionError(ValueError):
    """Text that does not say what it should; the message is the user's to read."""


class UnknownZone(ConversionError):
    """Not an IANA time zone name."""


class Conflict(ConversionError):
    """Options that cannot go together (a usage error on the command line)."""


def zone(name: str | tzinfo | None) -> tzinfo:
    """A tzinfo for a zone name (UTC for None and ``'UTC'``); UnknownZone if unknown."""
    if name is None or name == 'UTC':
        return timezone.utc
    if isinstance(name, tzinfo):
        return name
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError, OSError, TypeError):
        raise UnknownZone(f'unknown time zone {name!r}') from None


def parse_datetime(label: str, text: str) -> datetime:
    """ISO 8601 text as a datetime (naive when it has no offset)."""
    try:
        return from_iso(text)
    except ValueError:
        raise ConversionError(
            f'{label} {text!r} is not a date and time like {DATETIME_EXAMPLE}'
        ) from None


def is_naive(text: str) -> bool:
    """ISO text without a UTC offset (text that is no datetime counts as naive)."""
    try:
        return from_iso(text).tzinfo is None
    except ValueError:
        return True


def from_iso(text: str) -> datetime:
    """ISO 8601 text as Python 3.11's ``datetime.fromisoformat`` reads it (ValueError if not).

    Python 3.9 and 3.10 read only ``isoformat()``'s own forms (not ``Z``, nor
    ``20270101T0900``): there python-dateutil's ``isoparse`` reads the rest, its
    offsets made plain ``timezone`` values.
    """
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        if sys.version_info >= (3, 11):
            raise
    moment = isoparse(text)
    offset = moment.utcoffset()
    return moment if offset is None else moment.replace(tzinfo=timezone(offset))


def wall_time(naive: datetime, tz: tzinfo) -> tuple[datetime, bool]:
    """``naive`` read in ``tz``, and whether the clocks skip that wall time (DST).

    A skipped time becomes the moment it names: ``02:30`` on the night Paris
    goes from CET to CEST, read with the offset before the change, is 01:30
    UTC, which is 03:30 CEST.
    """
    moment = naive.replace(tzinfo=tz)
    real = moment.astimezone(timezone.utc).astimezone(tz)
    return real, real.replace(tzinfo=None) != naive


def every(text: str) -> schedule:
    """An interval from a duration (``90s``, ``5m``, ``1h30m``, ...)."""
    try:
        seconds = humanize.parse_duration(text)
    except ValueError as exc:
        raise ConversionError(f'--every {exc}') from None
    return schedule(run_every=seconds)


def cron(text: str) -> crontab:
    """A crontab from its five fields."""
    if len(text.split()) != 5:
        raise ConversionError(
            f'--cron {text!r}: needs 5 fields (minute hour day-of-month month day-of-week)'
        )
    try:
        return crontab.from_string(text)
    except Exception as exc:  # ValueError, or celery's ParseException
        raise ConversionError(f'--cron {text!r} is not a valid crontab: {exc}') from None


def rule(text: str, now: datetime, tz: tzinfo = timezone.utc) -> rrule:
    """A rule from RRULE text; without DTSTART it starts at today's midnight (in ``tz``).

    Starting at midnight makes unset BYHOUR/BYMINUTE/BYSECOND mean 0 (dateutil
    takes them from the start time), so ``FREQ=DAILY;BYHOUR=3`` means 03:00:00.
    """
    midnight = now.astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    try:
        parsed = du.rrulestr(text, dtstart=midnight)
        if not isinstance(parsed, du.rrule):
            raise ConversionError(f'--rrule {text!r}: give one rule, not a set')
        return _redbeat_rule(parsed, 'WKST' in text.upper())
    except ConversionError:
        raise
    except (ValueError, TypeError) as exc:
        raise ConversionError(f'--rrule {text!r} is not a valid rule: {exc}') from None


def _redbeat_rule(parsed: Any, with_wkst: bool) -> rrule:
    """The parsed dateutil rule as redbeat's rrule (fields as written, start resolved).

    dateutil keeps a parsed rule's fields only in attributes of its own (no
    public accessor gives them as written), so they are read here and nowhere else.
    """
    fields: dict[str, Any] = dict(parsed._original_rule)
    if with_wkst:
        fields['wkst'] = parsed._wkst
    return rrule(
        freq=parsed._freq, dtstart=parsed._dtstart, interval=parsed._interval,
        count=parsed._count, until=parsed._until, **fields,
    )  # fmt: skip


def once_at(
    text: str, tz: str | None, now: datetime, note: Callable[[str], None] = lambda _: None
) -> rrule:
    """A one-off rule at ``text`` (read in ``tz`` when it has no offset); it must be future.

    ``note`` is told when the time is one the clocks skip (see :func:`wall_time`).
    """
    moment = parse_datetime('--at', text)
    if moment.tzinfo is None:
        moment = noted_wall_time('--at', moment, zone_option(tz), note)
    elif tz is not None:
        raise Conflict('--tz: --at already carries a UTC offset')
    if moment <= now:
        raise ConversionError(f'--at {text!r} is in the past: the entry would never run')
    return rrule('DAILY', dtstart=moment, count=1)


def noted_wall_time(
    label: str, naive: datetime, tz: tzinfo, note: Callable[[str], None]
) -> datetime:
    """:func:`wall_time`, telling ``note`` when the clocks skip the time given."""
    real, skipped = wall_time(naive, tz)
    if skipped:
        note(
            f'{label} {naive.isoformat(timespec="minutes")} does not exist in {tz} '
            f'(the clocks skip it); that moment is {real.strftime("%Y-%m-%d %H:%M %Z")}'
        )
    return real


def zone_option(name: str | None) -> tzinfo:
    """The ``--tz`` option's zone (UTC without one)."""
    try:
        return zone(name)
    except UnknownZone:
        raise UnknownZone(f'--tz {name!r} is not a known time zone (e.g. Europe/Paris)') from None


def parse_schedule(
    every_text: str | None, cron_text: str | None, rrule_text: str | None, at: str | None,
    tz: str | None, now: datetime, note: Callable[[str], None] = lambda _: None,
) -> BaseSchedule | None:  # fmt: skip
    """The schedule the options describe (None if none); Conflict for two of them."""
    given = [name for name, value in
             (('--every', every_text), ('--cron', cron_text), ('--rrule', rrule_text),
              ('--at', at)) if value is not None]  # fmt: skip
    if len(given) > 1:
        raise Conflict(f'give one schedule, not {" and ".join(given)}')
    if every_text is not None:
        return every(every_text)
    if cron_text is not None:
        return cron(cron_text)
    if rrule_text is not None:
        return rule(rrule_text, now, zone_option(tz))
    if at is not None:
        return once_at(at, tz, now, note)
    return None
