"""Per-entry scheduling policy: time zone, missed runs, bounds, jitter, history.

Stored as JSON in the entry hash's ``policy`` field, which celery-redbeat 2.x
does not read; an entry with the default policy has no such field and stays
byte-for-byte what 2.x writes.  ``Policy`` is a frozen value, validated on
construction with messages that name the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from datetime import datetime, tzinfo
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

from .converters import UnknownZone, zone
from .errors import DefinitionError
from .validation import MAX_INTERVAL

MISSED_POLICIES = ('once', 'skip', 'all')
ON_FINISH = ('keep', 'disable', 'delete')
#: With ``missed='skip'`` and no catch-up window, how late an occurrence may be sent.
SKIP_GRACE = 60.0
#: Largest count a policy holds (runs, records kept): what Redis's own integers hold.
_MAX_WHOLE = 2**31 - 1


@dataclass(frozen=True)
class Policy:
    """How an entry's occurrences are turned into sends.  All fields optional.

    ``timezone``: IANA zone crontab fields are read in (default: Celery's).
    ``missed``: what to do when several occurrences are due at once (beat was
    down or behind): ``once`` sends the latest (Celery's behaviour), ``all``
    sends each (at most ``missed_limit``), ``skip`` sends none that is late.
    ``catchup_window``: occurrences older than this many seconds are not sent
    (counted as missed); for ``skip`` it defaults to 60 s.
    ``start_at`` / ``end_at``: no occurrence before / after these instants.
    ``max_runs``: the entry finishes after this many runs.
    ``on_finish``: when it has no more occurrences: ``keep`` it, ``disable``
    it, or ``delete`` it.
    ``jitter``: a random delay of up to this many seconds, the same for an
    occurrence whichever beat sends it.
    ``anchor``: intervals run at ``anchor + k * every`` (on the quarter hour,
    say), not at "last run + every".
    ``history``: how many dispatch records to keep (default: the setting
    ``redbeat_history_size``).
    """

    timezone: str | None = None
    missed: str | None = None
    missed_limit: int | None = None
    catchup_window: float | None = None
    start_at: datetime | None = None
    end_at: datetime | None = None
    max_runs: int | None = None
    on_finish: str | None = None
    jitter: float | None = None
    anchor: datetime | None = None
    history: int | None = None

    def __post_init__(self) -> None:
        problem = _problem(self)
        if problem:
            raise ValueError(problem)

    @property
    def tz(self) -> tzinfo | None:
        return None if self.timezone is None else ZoneInfo(self.timezone)

    def is_default(self) -> bool:
        return self == Policy()

    def merged(self, defaults: Policy) -> Policy:
        """This policy, with unset fields taken from ``defaults`` (the app's)."""
        given = self._given
        return replace(defaults, **given) if given else defaults

    @cached_property
    def _given(self) -> dict[str, Any]:
        """The fields that are set (frozen, so computed once)."""
        return {
            f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None
        }

    def to_json(self) -> str | None:
        """The stored JSON; None for the default policy (no field is stored)."""
        return self._json

    @cached_property
    def _json(self) -> str | None:
        from .codec import dumps

        return dumps(self._given) if self._given else None

    @classmethod
    def from_json(cls, key: str, text: str | None) -> Policy:
        """The policy stored for ``key`` (DefinitionError if it cannot be read)."""
        if not text:
            return DEFAULT
        from .codec import parse

        return cls.from_dict(key, parse(key, 'policy', text))

    @classmethod
    def from_dict(cls, key: str, raw: Any) -> Policy:
        if not isinstance(raw, dict):
            raise DefinitionError(key, 'policy must be a JSON object')
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise DefinitionError(key, f'policy has unknown fields {unknown}')
        try:
            return cls(**raw)
        except (TypeError, ValueError) as exc:
            raise DefinitionError(key, f'policy: {exc}') from None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _problem(p: Policy) -> str | None:
    """What is wrong with ``p``, naming the field; None if nothing."""
    if p.timezone is not None:
        try:
            zone(p.timezone)
        except UnknownZone:
            return f'timezone {p.timezone!r} is not an IANA time zone name'
    if p.missed is not None and p.missed not in MISSED_POLICIES:
        return f'missed must be one of {", ".join(MISSED_POLICIES)}, not {p.missed!r}'
    if p.on_finish is not None and p.on_finish not in ON_FINISH:
        return f'on_finish must be one of {", ".join(ON_FINISH)}, not {p.on_finish!r}'
    for name in ('missed_limit', 'max_runs', 'history'):
        value = getattr(p, name)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _MAX_WHOLE
        ):
            return f'{name} must be a whole number from 0 to {_MAX_WHOLE}, not {value!r}'
    for name in ('catchup_window', 'jitter'):
        value = getattr(p, name)
        if value is not None and (
            not _number(value) or not math.isfinite(value) or not 0 <= value <= MAX_INTERVAL
        ):
            return f'{name} must be a number of seconds from 0 to {MAX_INTERVAL}, not {value!r}'
    for name in ('start_at', 'end_at', 'anchor'):
        value = getattr(p, name)
        if value is not None and (not isinstance(value, datetime) or value.utcoffset() is None):
            return f'{name} must be a datetime with a time zone, not {value!r}'
    if p.start_at and p.end_at and p.end_at <= p.start_at:
        return 'end_at must be after start_at'
    return None


DEFAULT = Policy()
