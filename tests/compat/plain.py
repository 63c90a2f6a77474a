"""Entries as plain JSON-able values, the same way in either package.

Imported by our tests and by scripts the celery-redbeat 2.4.2 interpreter runs
(``legacy_entries.py``), so it imports neither package: it only reads the
attributes both entry and schedule classes share.
"""

from datetime import datetime, timezone


def plain(value):
    """``value`` with every typed value spelt out (lists for tuples and sets)."""
    if isinstance(value, datetime):
        zone = getattr(value.tzinfo, 'key', None)
        if value.tzinfo is timezone.utc:
            zone = 'UTC'  # 2.x builds ZoneInfo('UTC') where we build timezone.utc
        return ['datetime', value.isoformat(), zone]
    if hasattr(value, 'weekday') and hasattr(value, 'n') and not isinstance(value, datetime):
        return ['weekday', value.weekday, value.n]
    kind = type(value).__name__
    if kind == 'crontab':
        fields = ('minute', 'hour', 'day_of_week', 'day_of_month', 'month_of_year')
        orig = [str(getattr(value, '_orig_' + f)) for f in fields]
        return ['crontab', orig, [sorted(getattr(value, f)) for f in fields]]
    if kind == 'rrule':
        fields = ('freq', 'interval', 'wkst', 'count', 'bysetpos', 'bymonth', 'bymonthday',
                  'byyearday', 'byeaster', 'byweekno', 'byweekday', 'byhour', 'byminute',
                  'bysecond', 'dtstart', 'until')  # fmt: skip
        return ['rrule', {f: plain(getattr(value, f)) for f in fields}]
    if kind == 'schedule':
        return ['interval', value.run_every.total_seconds(), bool(value.relative)]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    return value


def entry_fields(entry):
    """What a user of either package sees of a loaded entry."""
    names = ('name', 'task', 'schedule', 'args', 'kwargs', 'options', 'enabled',
             'last_run_at', 'total_run_count')  # fmt: skip
    return {name: plain(getattr(entry, name)) for name in names}
