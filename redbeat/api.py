"""The Python management API: :class:`ScheduleClient`, one object to list and change entries.

``ScheduleClient(app)`` (or ``ScheduleClient.from_url(url, prefix)`` without an app) is
what the ``redbeat`` command line is built on.  Reads go through
:class:`~redbeat.store.ScheduleStore` in pages of a bounded number of round
trips (never one per entry); writes go through
:func:`~redbeat.entry.save_entries` (keeps run state, computes scores) and
:meth:`~redbeat.store.ScheduleStore.delete`, which publish a change notice so
a running beat sees them at once.  Listing never fails because one entry is
malformed: the entry comes back with ``error`` set instead.

Each entry may carry a scheduling :class:`~redbeat.policy.Policy` (time zone,
missed runs, start/end, max runs, jitter, anchor, history size): pass
``policy=`` or its fields as keywords to :meth:`ScheduleClient.add`, or use
:meth:`ScheduleClient.add_once` for a one-off.  :meth:`ScheduleClient.get` also reads the
entry's dispatch history; listing does not (one pipeline per page, whatever
the history size).
"""

from __future__ import annotations

import builtins
import fnmatch
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta, timezone, tzinfo
from functools import partial
from typing import TYPE_CHECKING, Any, TypedDict

from celery import Celery
from celery.schedules import BaseSchedule, crontab, schedule
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

from . import converters, timing
from .client import redis_from_config
from .codec import decode_definition, decode_meta, dumps, encode_definition
from .compat import context_for
from .config import RedBeatConfig
from .entry import (
    RedBeatSchedulerEntry,
    StoreContext,
    save_entries,
    save_if_unchanged,
)
from .errors import (
    DefinitionError,
    EntryNotFound,
    RedBeatError,
    WriteConflict,
)
from .policy import DEFAULT as DEFAULT_POLICY
from .policy import Policy
from .schedules import rrule
from .store import CHANGED, GONE, STALE_META, WRONG_TYPE, Inspected, ScheduleStore

if TYPE_CHECKING:  # typing.Unpack is Python 3.11+; annotations are never evaluated here
    from typing_extensions import Unpack

__all__ = ['POLICY_FIELDS', 'TASK_NAME', 'Dispatch', 'EntryInfo', 'ImportPlan', 'Overview',
           'PolicyFields', 'Problem', 'Schedule', 'ScheduleClient', 'make_policy']  # fmt: skip

#: The names of the policy fields, accepted as keywords and in ``beat_schedule`` items.
POLICY_FIELDS = tuple(f.name for f in fields(Policy))
_DATETIME_FIELDS = ('start_at', 'end_at', 'anchor')
#: The entry hash fields the API reads: beat's three, then the two counters.
#: Attempts of a read-modify-write (enable, disable, edit) before WriteConflict.
UPDATE_ATTEMPTS = 20


class _Changed(Exception):
    """The entry changed between the read and the conditional write: read again."""


@dataclass(frozen=True)
class Dispatch:
    """One record of an entry's dispatch history (``<prefix>:history:<name>``).

    ``scheduled``: the occurrence's time; ``sent``: when beat published it;
    ``outcome``: ``sent``, ``error`` (the broker refused that message) or
    ``handed back`` (the broker was unreachable; the occurrence is retried).
    """

    scheduled: datetime | None
    sent: datetime | None
    task_id: str | None
    outcome: str

    @classmethod
    def from_json(cls, text: str) -> Dispatch:
        """A record from its stored JSON; an unreadable one has outcome ``unreadable``."""
        try:
            raw = json.loads(text)
            if not isinstance(raw, dict):
                raise ValueError(text)
            return cls(
                scheduled=_iso(raw.get('scheduled')),
                sent=_iso(raw.get('sent')),
                task_id=None if raw.get('task_id') is None else str(raw['task_id']),
                outcome=str(raw.get('outcome', '?')),
            )
        except (ValueError, TypeError):
            return cls(None, None, None, 'unreadable')


def _iso(value: Any) -> datetime | None:
    if value is None:
        return None
    moment = converters.from_iso(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


#: What a task name may look like (``proj.tasks.report``, ``app:job-1``).
TASK_NAME = re.compile(r'^[\w.:-]+$')
_GLOB_CHARS = re.compile(r'[*?\[]')


@dataclass(frozen=True)
class EntryInfo:
    """One entry as stored, decoded as far as it can be.

    ``error`` is set (and the decoded fields left empty) when the definition
    or the policy cannot be read; ``score`` is None when the entry is not in
    the schedule.  ``missed`` and ``skipped`` count occurrences not sent
    (too late for the catch-up window / left out by the missed-run policy).
    ``history`` holds the latest dispatches, newest first, when the entry
    was read with :meth:`ScheduleClient.get` (None when it was listed).
    """

    name: str
    key: str
    task: str | None = None
    schedule: BaseSchedule | None = None
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True
    score: float | None = None
    last_run_at: datetime | None = None
    total_run_count: int = 0
    definition: str | None = None
    meta: str | None = None
    error: str | None = None
    exists: bool = True
    policy: Policy = DEFAULT_POLICY
    missed: int = 0
    skipped: int = 0
    history: tuple[Dispatch, ...] | None = None

    @property
    def tz(self) -> tzinfo | None:
        """The entry's own time zone (its policy's), or None."""
        return self.policy.tz

    @property
    def next_due(self) -> datetime | None:
        """When it runs next (from the score): None if never; score 0 (due now) is the epoch.

        In the entry's own time zone when it has one, else in UTC.
        """
        due = None if self.score is None else timing.from_score(self.score)
        tz = self.tz
        return due if due is None or tz is None else due.astimezone(tz)

    @property
    def due_now(self) -> bool:
        return self.score == timing.NOW

    @property
    def scheduled(self) -> bool:
        """True when the entry is a member of the schedule sorted set."""
        return self.score is not None

    def as_item(self) -> dict[str, Any]:
        """The entry as a ``beat_schedule`` item, its schedule in the full JSON form 2.x writes.

        A policy other than the default is under ``policy``, as stored.
        """
        item = dict(json.loads(encode_definition(self._fields(), full=True)))
        del item['name']
        return item | policy_item(self.policy)

    def _fields(self) -> dict[str, Any]:
        if self.error:
            raise DefinitionError(self.key, self.error)
        return {
            'name': self.name,
            'task': self.task,
            'schedule': self.schedule,
            'args': self.args,
            'kwargs': self.kwargs,
            'options': self.options,
            'enabled': self.enabled,
        }


@dataclass(frozen=True)
class Overview:
    """The state of the schedule as ``redbeat status`` reports it."""

    lock_key: str | None
    lock_holder: str | None
    lock_ttl: float | None
    entries: int
    due: int
    overdue: int
    upcoming: list[tuple[str, datetime | None]]
    eviction_policy: str | None
    maxmemory: str | None
    #: When the leader last ticked (its heartbeat), and which beat (lock token) it is.
    last_tick: datetime | None = None
    ticked_by: str | None = None

    @property
    def eviction_risk(self) -> bool:
        """True when Redis may evict schedule keys under memory pressure."""
        policy, limit = self.eviction_policy, self.maxmemory
        return bool(policy and policy.startswith('allkeys-') and limit not in (None, '0'))


@dataclass(frozen=True)
class Health:
    """What ``redbeat health`` decides: ``ok``, and one line saying why."""

    ok: bool
    reason: str
    lock_holder: str | None
    last_tick: datetime | None
    overdue: int


def _heartbeat(text: str | None) -> tuple[datetime | None, str | None]:
    """The leader's last tick and token from the heartbeat key; (None, None) if unreadable."""
    if not text:
        return None, None
    try:
        beat = json.loads(text)
        at = datetime.fromtimestamp(float(beat['at']), tz=timezone.utc)
        return at, str(beat['beat'])
    except (ValueError, TypeError, KeyError, OverflowError, OSError):
        return None, None


@dataclass(frozen=True)
class Problem:
    """One inconsistency ``check`` found; ``fixable`` when ``check --fix`` repairs it."""

    kind: str  # malformed | dangling-member | unscheduled | stale-disabled-score
    name: str
    detail: str
    fixable: bool


def policy_item(policy: Policy) -> dict[str, Any]:
    """``{'policy': <stored JSON form>}``, or ``{}`` for the default policy."""
    text = policy.to_json()
    return {} if text is None else {'policy': json.loads(text)}


def _info(store: ScheduleStore, read: Inspected, score: float | None) -> EntryInfo:
    """Decode what was read for one key; a decoding problem becomes ``error``."""
    row, exists = read.row, read.exists
    base = EntryInfo(
        name=store.keys.name_of(row.key),
        key=row.key,
        score=score,
        definition=row.definition,
        meta=row.meta,
        exists=exists,
        missed=read.missed,
        skipped=read.skipped,
    )
    try:
        if row.error:
            raise DefinitionError(row.key, row.error)
        if not exists:
            raise DefinitionError(row.key, 'is in the schedule but the hash does not exist')
        fields = decode_definition(row.key, row.definition)
        last_run_at, count = decode_meta(row.key, row.meta)
        policy = Policy.from_json(row.key, row.policy)
    except DefinitionError as exc:
        return replace(base, error=exc.reason)
    del fields['name']  # the key names the entry, as beat reads it
    return replace(base, last_run_at=last_run_at, total_run_count=count, policy=policy, **fields)


def _moment(name: str, label: str, value: Any, tz: tzinfo) -> datetime:
    """A datetime for a policy field: ISO text or a datetime; naive ones are read in ``tz``."""
    if isinstance(value, str):
        try:
            value = converters.parse_datetime(label, value)
        except converters.ConversionError as exc:
            raise DefinitionError(name, str(exc)) from None
    if isinstance(value, datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    if not isinstance(value, datetime):
        raise DefinitionError(name, f'{label} must be a datetime, not {value!r}')
    return value


def _zone_of(name: str, zone_name: Any) -> tzinfo:
    try:
        return converters.zone(zone_name)
    except converters.UnknownZone:
        raise DefinitionError(
            name, f'policy: timezone {zone_name!r} is not an IANA time zone name'
        ) from None


def make_policy(
    name: str, policy: Policy | Mapping[str, Any] | None = None, **given: Any
) -> Policy:
    """A policy from ``policy`` (a Policy, or a mapping as stored or written by hand)
    with the fields in ``given`` that are not None set over it.

    Datetimes may be ISO text; naive ones are read in the policy's time zone
    (UTC when it has none).  DefinitionError names the entry and the field.
    """
    if policy is None:
        raw: dict[str, Any] = {}
    elif isinstance(policy, Policy):
        raw = {f: getattr(policy, f) for f in POLICY_FIELDS if getattr(policy, f) is not None}
    elif isinstance(policy, Mapping):
        raw = dict(policy)
    else:
        raise DefinitionError(name, f'policy must be a Policy or a mapping, not {policy!r}')
    unknown = sorted(set(given) - set(POLICY_FIELDS))
    if unknown:
        raise DefinitionError(name, f'unknown policy fields {unknown}')
    raw.update({k: v for k, v in given.items() if v is not None})
    tz = _zone_of(name, raw.get('timezone'))
    for label in _DATETIME_FIELDS:
        value = raw.get(label)
        if value is not None and not (isinstance(value, Mapping) and '__type__' in value):
            raw[label] = _moment(name, label, value, tz)
    # Through the stored form, so typed JSON values (datetimes) decode as beat reads them.
    try:
        text = dumps(raw)
    except (TypeError, ValueError) as exc:  # a value JSON cannot hold: name its field
        field = next((k for k, v in raw.items() if not _storable(v)), None)
        where = f'policy {field} ({raw[field]!r})' if field else 'policy'
        raise DefinitionError(name, f'{where}: {exc}') from None
    return Policy.from_json(name, text)


def _storable(value: Any) -> bool:
    try:
        dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def check_policy(name: str, sched: BaseSchedule, policy: Policy) -> None:
    """DefinitionError when ``policy`` does not fit ``sched``."""
    if policy.anchor is not None and (not isinstance(sched, schedule) or isinstance(
            sched, crontab)):  # fmt: skip
        raise DefinitionError(name, 'anchor applies only to interval schedules (every ...)')


def coerce_schedule(name: str, value: Any) -> BaseSchedule:
    """A schedule from what a ``beat_schedule`` item may hold (or its stored JSON form)."""
    if isinstance(value, BaseSchedule):
        return value
    if isinstance(value, timedelta):
        return schedule(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return schedule(timedelta(seconds=value))
    if isinstance(value, Mapping):
        text = dumps({'name': name, 'task': 'x', 'schedule': dict(value)})
        sched: BaseSchedule = decode_definition(name, text)['schedule']
        return sched
    raise DefinitionError(name, f'schedule must be a schedule, seconds or timedelta, not {value!r}')


def check_task_name(name: str, task: Any) -> str:
    if not isinstance(task, str) or not TASK_NAME.match(task):
        raise DefinitionError(
            name, f'task {task!r} is not a task name (letters, digits, and . _ : - only)'
        )
    return task


class PolicyFields(TypedDict, total=False):
    """The policy keywords of :meth:`ScheduleClient.add` and its siblings (see
    :class:`~redbeat.policy.Policy`); None leaves a field as the policy given has it."""

    timezone: str | None
    missed: str | None
    missed_limit: int | None
    catchup_window: float | None
    start_at: datetime | str | None
    end_at: datetime | str | None
    max_runs: int | None
    on_finish: str | None
    jitter: float | None
    anchor: datetime | str | None
    history: int | None


class ScheduleClient:
    """The entries stored under one prefix of one Redis.  Constructing it does no I/O.

    Named ``Schedule`` before 3.0 (still an alias, see :data:`Schedule`): beside
    Celery's ``schedule`` (an interval), the new name says what it is.

    ``app`` is the Celery app tasks are sent with (``run_now``).  Entries it
    makes carry this schedule's store (:attr:`context`): they save where it reads.
    """

    def __init__(
        self,
        app: Celery | None = None,
        *,
        config: RedBeatConfig | None = None,
        store: ScheduleStore | None = None,
    ) -> None:
        if app is None and config is None:
            raise TypeError('ScheduleClient needs a Celery app or a RedBeatConfig')
        self.app = app
        if config is None:  # the app's own settings and client, as beat uses them
            bound = context_for(app)
            config, store = bound.config, store or bound.store
        self.config = config
        self.store = store or ScheduleStore(redis_from_config(config), config.keys)
        #: The store and settings entries are saved with.
        self.context = StoreContext(config, self.store)

    @classmethod
    def from_app(cls, app: Celery) -> ScheduleClient:
        """The schedule ``app``'s settings point at, sharing its client: ``ScheduleClient(app)``."""
        return cls(app)

    @classmethod
    def from_url(
        cls,
        url: str,
        prefix: str | None = None,
        *,
        timezone: str = 'UTC',
        app: Celery | None = None,
    ) -> ScheduleClient:
        """The schedule at ``url`` under ``prefix``, without needing an app's settings.

        Without ``prefix``, the one beat uses for that URL: ``{redbeat}:`` on
        Redis Cluster (``redis-cluster://``), else ``redbeat:``.
        """
        return cls(app, config=RedBeatConfig.from_url(url, prefix, timezone=timezone))

    # --- reading -----------------------------------------------------------

    def entries(
        self,
        pattern: str = '*',
        enabled: bool | None = None,
        task: str | None = None,
        page_size: int = 1000,
    ) -> Iterator[EntryInfo]:
        """Entries whose name matches the glob ``pattern``, in no particular order.

        Pages through the sorted set (ZSCAN, then one pipeline per page), then
        through hashes that are not in it (SCAN, ZMSCORE, one pipeline).
        ``task`` is a glob on the task name; ``enabled`` keeps only enabled
        (True) or disabled (False) entries.  Malformed entries match any
        ``enabled``/``task`` filter, so they are never hidden.
        """
        for info in self._all(pattern, page_size):
            if info.error is None:
                if enabled is not None and info.enabled != enabled:
                    continue
                if task is not None and not fnmatch.fnmatchcase(info.task or '', task):
                    continue
            yield info

    #: :meth:`entries`, under its name before 3.0 (it shadowed the builtin ``list``).
    list = entries

    def _all(self, pattern: str, page_size: int) -> Iterator[EntryInfo]:
        keys = self.config.keys
        seen: set[str] = set()
        for page in self.store.scan_schedule(page_size):
            wanted: dict[str, float] = {}
            for member, score in page:
                key = keys.key_of(member)
                if key not in seen and fnmatch.fnmatchcase(keys.name_of(key), pattern):
                    seen.add(key)
                    wanted[key] = float(score)
            for read in self.store.inspect(list(wanted)):
                yield _info(self.store, read, wanted[read.row.key])

        def matches(key: str) -> bool:
            return fnmatch.fnmatchcase(keys.name_of(key), pattern)

        for batch in self.store.unscheduled(matches, page_size):
            for read in self.store.inspect(batch):
                yield _info(self.store, read, None)

    def names(self, pattern: str = '*', page_size: int = 1000) -> builtins.list[str]:
        """Names of the entries matching ``pattern`` (members and hashes), sorted."""
        keys = self.config.keys
        found = {
            keys.name_of(member)
            for page in self.store.scan_schedule(page_size)
            for member, _ in page
        }
        found.update(
            keys.name_of(k) for batch in self.store.scan_entry_keys(page_size) for k in batch
        )
        return sorted(
            n
            for n in found
            if fnmatch.fnmatchcase(n, pattern) and not keys.is_internal(keys.entry(n))
        )

    def get(self, name: str, history: int | None = 100) -> EntryInfo:
        """One entry, with its latest ``history`` dispatch records (None: do not read them).

        EntryNotFound when there is neither a hash nor a member.
        """
        key = self.config.keys.entry_checked(name)
        read, score, records = self.store.entry(name, history)
        if not read.exists and score is None:
            raise EntryNotFound(key)
        info = _info(self.store, read, score)
        if records is None:
            return info
        return replace(info, history=tuple(Dispatch.from_json(r) for r in records))

    def history(self, name: str, limit: int = 100) -> tuple[Dispatch, ...]:
        """The entry's latest dispatches, newest first (one round trip)."""
        if limit <= 0:
            return ()
        return tuple(Dispatch.from_json(r) for r in self.store.history(name, limit))

    def overview(self, now: datetime | None = None, upcoming: int = 5) -> Overview:
        """Lock holder, counts of due and overdue entries, the next due, eviction policy.

        Overdue means due for longer than ``beat_max_loop_interval``: a live
        leader would have sent it by then.
        """
        moment = (now or datetime.now(timezone.utc)).timestamp()
        lock_key = self.config.lock_key
        raw = self.store.overview(
            lock_key, moment, moment - self.config.max_loop_interval, upcoming, memory=True
        )
        return Overview(
            lock_key=lock_key,
            lock_holder=raw.lock_holder,
            lock_ttl=raw.lock_ttl,
            entries=raw.entries,
            due=raw.due,
            overdue=raw.overdue,
            upcoming=[(self.config.keys.name_of(m), timing.from_score(s)) for m, s in raw.upcoming],
            eviction_policy=raw.maxmemory_policy,
            maxmemory=raw.maxmemory,
            last_tick=_heartbeat(raw.heartbeat)[0],
            ticked_by=_heartbeat(raw.heartbeat)[1],
        )

    def default_tick_age(self) -> float:
        """How old the leader's last tick may be before :meth:`health` fails, by default.

        A leader holding the lock ticks at least every third of the lock
        timeout; without a lock beat may sleep ``beat_max_loop_interval``.  A
        minute on top covers a long tick and the heartbeat's own 5 s cadence.
        """
        if self.config.lock_key is None:
            return self.config.max_loop_interval + 60.0
        return max(60.0, self.config.lock_timeout)

    def health(
        self,
        now: datetime | None = None,
        max_tick_age: float | None = None,
        max_overdue: float = 60.0,
    ) -> Health:
        """Is a leader dispatching?  One round trip.

        Healthy when a beat holds the lock (unless locking is disabled), the
        leader's last tick is at most ``max_tick_age`` seconds old (default:
        :meth:`default_tick_age`) and no entry has been due for longer than
        ``max_overdue`` seconds.
        """
        moment = now or datetime.now(timezone.utc)
        age_limit = self.default_tick_age() if max_tick_age is None else max_tick_age
        lock_key = self.config.lock_key
        ts = moment.timestamp()
        raw = self.store.overview(lock_key, ts, ts - max_overdue, 1)
        last, by = _heartbeat(raw.heartbeat)
        out = partial(Health, lock_holder=raw.lock_holder, last_tick=last, overdue=raw.overdue)
        if lock_key is not None and raw.lock_holder is None:
            return out(False, f'no beat holds the lock {lock_key}')
        if last is None:
            return out(False, f'no beat has ticked yet ({self.config.keys.heartbeat} is not set)')
        age = ts - last.timestamp()
        if age > age_limit:
            return out(False, f'the last tick was {age:.0f}s ago, by {by} (limit {age_limit:g}s)')
        if raw.overdue:
            many = f'{raw.overdue} entries have' if raw.overdue > 1 else '1 entry has'
            return out(False, f'{many} been due for more than {max_overdue:g}s')
        holder = raw.lock_holder or by
        return out(True, f'leader {holder} ticked {max(age, 0.0):.1f}s ago; nothing overdue')

    def events(self, count: int = 20) -> builtins.list[tuple[str, dict[str, str]]]:
        """The latest ``count`` events of the events stream, newest first: (id, fields)."""
        return self.store.events(count)

    # --- writing -----------------------------------------------------------

    def entry(
        self,
        name: str,
        task: str,
        schedule: Any,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        enabled: bool = True,
        *,
        policy: Policy | Mapping[str, Any] | None = None,
        **policy_fields: Unpack[PolicyFields],
    ) -> RedBeatSchedulerEntry:
        """A checked entry object (DefinitionError naming what is wrong); no I/O.

        ``policy`` (a :class:`~redbeat.policy.Policy` or a mapping) and the
        keywords after it set the entry's scheduling policy; keywords win.
        """
        self.config.keys.entry_checked(name)
        check_task_name(name, task)
        for label, value, kind in (('args', args, (list, tuple)), ('kwargs', kwargs, Mapping),
                                   ('options', options, Mapping)):  # fmt: skip
            if value is not None and not isinstance(value, kind):
                raise DefinitionError(name, f'{label} must be a {kind}, not {value!r}')
        chosen = make_policy(name, policy, **policy_fields)
        sched = coerce_schedule(name, schedule)
        check_policy(name, sched, chosen)
        return RedBeatSchedulerEntry(
            name=name,
            task=task,
            schedule=sched,
            args=list(args or ()),
            kwargs=dict(kwargs or {}),
            options=dict(options or {}),
            enabled=enabled,
            app=self.app,
            policy=chosen,
            context=self.context,
        )

    def entry_from_dict(self, name: str, item: Mapping[str, Any]) -> RedBeatSchedulerEntry:
        """An entry from a ``beat_schedule`` item (``task``, ``schedule``, ``args``, ...).

        The policy may be under ``policy`` (as :meth:`EntryInfo.as_item` and
        ``redbeat export`` write it) and/or as top-level policy fields.
        """
        if not isinstance(item, Mapping):
            raise DefinitionError(name, f'must be a mapping of entry fields, not {item!r}')
        known = {'task', 'schedule', 'args', 'kwargs', 'options', 'enabled', 'name', 'policy'}
        unknown = set(item) - known - set(POLICY_FIELDS)
        if unknown:
            raise DefinitionError(name, f'unknown fields {sorted(unknown)}')
        if 'schedule' not in item:
            raise DefinitionError(name, "needs a 'schedule'")
        enabled = item.get('enabled', True)
        if not isinstance(enabled, bool):
            raise DefinitionError(name, f'enabled must be true or false, not {enabled!r}')
        policy = make_policy(
            name, item.get('policy'), **{k: item[k] for k in POLICY_FIELDS if k in item}
        )
        return self.entry(
            name,
            item.get('task'),  # type: ignore[arg-type]  # checked by entry()
            item['schedule'],
            item.get('args'),
            item.get('kwargs'),
            item.get('options'),
            enabled,
            policy=policy,
        )

    def add(
        self,
        name: str,
        task: str,
        schedule: Any,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        enabled: bool = True,
        *,
        policy: Policy | Mapping[str, Any] | None = None,
        **policy_fields: Unpack[PolicyFields],
    ) -> RedBeatSchedulerEntry:
        """Add or replace the definition (and policy) of ``name``; its run state is kept.

        The policy keywords are those of :class:`~redbeat.policy.Policy`:
        ``timezone`` (IANA name crontab fields are read in), ``missed``
        (``'once'``, ``'skip'`` or ``'all'``), ``missed_limit``,
        ``catchup_window`` and ``jitter`` (seconds), ``start_at``, ``end_at``
        and ``anchor`` (datetimes; naive ones are read in ``timezone``),
        ``max_runs``, ``on_finish`` (``'keep'``, ``'disable'``, ``'delete'``)
        and ``history`` (records kept).  Omitted fields follow the app's
        settings.
        """
        entry = self.entry(
            name, task, schedule, args, kwargs, options, enabled, policy=policy, **policy_fields
        )
        save_entries([entry], context=self.context)
        return entry

    def once_entry(
        self,
        name: str,
        task: str,
        at: datetime | str,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        *,
        delete_after: bool = False,
        now: datetime | None = None,
        policy: Policy | Mapping[str, Any] | None = None,
        **policy_fields: Unpack[PolicyFields],
    ) -> RedBeatSchedulerEntry:
        """The entry :meth:`add_once` saves (checked, no I/O)."""
        zone_name = policy_fields.get('timezone')
        if zone_name is None and policy is not None:
            zone_name = (policy.get('timezone') if isinstance(policy, Mapping)
                         else getattr(policy, 'timezone', None))  # fmt: skip
        # Whole seconds: the stored rule (celery-redbeat 2.x format) keeps no fraction.
        moment = _moment(name, 'at', at, _zone_of(name, zone_name)).replace(microsecond=0)
        if moment <= (now or datetime.now(tz=timezone.utc)):
            raise DefinitionError(
                name, f'at {moment.isoformat()} is in the past: it would never run'
            )
        given = policy_fields.get('on_finish')
        if given is None and policy is not None:
            given = (policy.get('on_finish') if isinstance(policy, Mapping)
                     else getattr(policy, 'on_finish', None))  # fmt: skip
        chosen = policy_fields.copy()
        chosen['on_finish'] = one_off_finish(given, delete_after)
        sched = rrule('DAILY', dtstart=moment, count=1)
        return self.entry(name, task, sched, args, kwargs, options, policy=policy, **chosen)

    def add_once(
        self,
        name: str,
        task: str,
        at: datetime | str,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        *,
        delete_after: bool = False,
        policy: Policy | Mapping[str, Any] | None = None,
        **policy_fields: Unpack[PolicyFields],
    ) -> RedBeatSchedulerEntry:
        """Run ``task`` once at ``at``, then disable the entry (or delete it: ``delete_after``).

        ``at`` is an aware datetime or ISO text; a naive one is read in the
        ``timezone`` keyword's zone (UTC without one).  It must be in the
        future.  The schedule is ``rrule(count=1, dtstart=at)``, readable by
        celery-redbeat 2.x; the policy's ``on_finish`` does the clean-up.
        Other policy keywords (``jitter``, ``history``, ...) are accepted.
        """
        entry = self.once_entry(
            name, task, at, args, kwargs, options, delete_after=delete_after, policy=policy,
            **policy_fields,
        )  # fmt: skip
        save_entries([entry], context=self.context)
        return entry

    def add_from_dict(self, name: str, item: Mapping[str, Any]) -> RedBeatSchedulerEntry:
        """:meth:`add` from a ``beat_schedule`` item."""
        entry = self.entry_from_dict(name, item)
        save_entries([entry], context=self.context)
        return entry

    def add_many(
        self, items: Mapping[str, Mapping[str, Any]]
    ) -> builtins.list[RedBeatSchedulerEntry]:
        """Add or replace many entries in one batch; all are checked before any is written."""
        entries = [self.entry_from_dict(name, item) for name, item in items.items()]
        save_entries(entries, context=self.context)
        return entries

    def plan_import(
        self, entries: Sequence[RedBeatSchedulerEntry], prune: bool = False
    ) -> ImportPlan:
        """What importing ``entries`` would do to the stored schedule (reads, writes nothing).

        ``+`` add, ``~`` update, ``=`` unchanged, and with ``prune`` ``-`` remove
        each stored entry that is not among ``entries``.
        """
        stored = {info.name: info for info in self.entries()}
        steps = []
        for entry in entries:
            info = stored.get(entry.name)
            if info is None:
                steps.append(('+', entry.name))
            elif info.error is None and info.as_item() == entry_item(entry):
                steps.append(('=', entry.name))
            else:
                steps.append(('~', entry.name))
        if prune:
            wanted = {e.name for e in entries}
            steps += [('-', name) for name in sorted(stored) if name not in wanted]
        writes = {name for sign, name in steps if sign in '+~'}
        return ImportPlan(
            steps,
            [e for e in entries if e.name in writes],
            [name for sign, name in steps if sign == '-'],
        )

    def apply_import(self, plan: ImportPlan) -> None:
        """Write what :meth:`plan_import` planned: one batch of saves, one of deletes."""
        self.save(plan.changed)
        self.delete(plan.removed)

    def save(self, entries: Sequence[RedBeatSchedulerEntry]) -> None:
        """Store entries built with :meth:`entry` (one batch)."""
        save_entries(list(entries), context=self.context)

    def remove(self, *names_or_globs: str) -> int:
        """Delete entries by name or glob, in one round trip; returns how many existed."""
        return self.delete(self.expand(names_or_globs))

    def delete(self, names: Iterable[str]) -> int:
        """Delete entries by exact name (hash and member), in one round trip."""
        return sum(self.delete_each(names))

    def delete_each(self, names: Iterable[str]) -> builtins.list[bool]:
        """Delete entries by exact name; per name, whether it was an entry.

        Only entries are deleted (a hash with a definition, or a schedule
        member): never redbeat's own keys (DefinitionError, before anything
        is deleted) nor other data sharing the prefix.
        """
        names = builtins.list(names)
        for name in names:
            self.config.keys.entry_checked(name)
        return self.store.delete_each(names)

    def expand(self, names_or_globs: Iterable[str]) -> builtins.list[str]:
        """Names as given, with each glob replaced by the entries it matches.

        A glob matches entries only; an explicit name that is one of
        redbeat's own keys raises DefinitionError.
        """
        out: dict[str, None] = {}
        for item in names_or_globs:
            if _GLOB_CHARS.search(item):
                found = self.names(item)
            else:
                self.config.keys.entry_checked(item)
                found = [item]
            out.update(dict.fromkeys(found))
        return builtins.list(out)

    def update(
        self, name: str, change: Callable[[EntryInfo], RedBeatSchedulerEntry]
    ) -> RedBeatSchedulerEntry:
        """Read-modify-write one entry: ``change`` builds the new entry from the stored one.

        The entry is written only if it is still as read (definition, policy
        and run state: compared as stored text, so writers that keep no
        version, celery-redbeat 2.x and redis-cli, are seen too); otherwise it
        is read again and ``change`` called again, up to ``UPDATE_ATTEMPTS``
        times with a short random backoff, then :class:`~redbeat.errors.WriteConflict`.  Two
        round trips when nothing interferes.  EntryNotFound when the entry does
        not exist or is deleted meanwhile (it is never created again);
        DefinitionError when it cannot be read.
        """
        key = self.config.keys.entry_checked(name)

        def attempt() -> RedBeatSchedulerEntry:
            row, score = self.store.read(key)
            if row.definition is None and row.error is None:
                raise EntryNotFound(key)
            info = _info(self.store, Inspected(row, exists=True), score)
            if info.error:
                raise DefinitionError(key, info.error)
            entry = change(info)
            if entry.name != name:
                raise DefinitionError(key, f'an update may not rename the entry to {entry.name!r}')
            flag = save_if_unchanged(entry, row, context=self.context)
            if flag in (CHANGED, STALE_META):
                raise _Changed
            if flag == GONE:
                raise EntryNotFound(key)
            if flag == WRONG_TYPE:
                raise DefinitionError(key, 'key is not a hash (wrong type)')
            return entry

        # Every conflict means another writer succeeded; the jittered backoff
        # keeps two clients that collide from colliding again in step.
        retry = Retry(
            ExponentialWithJitterBackoff(cap=0.05, base=0.001),
            UPDATE_ATTEMPTS - 1,
            supported_errors=(_Changed,),
        )
        try:
            return retry.call_with_retry(attempt, lambda _exc: None)
        except _Changed:
            raise WriteConflict(key, UPDATE_ATTEMPTS) from None

    def edit(
        self,
        name: str,
        *,
        task: str | None = None,
        schedule: Any = None,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        enabled: bool | None = None,
        policy: Policy | Mapping[str, Any] | None = None,
        **policy_fields: Unpack[PolicyFields],
    ) -> RedBeatSchedulerEntry:
        """Change the given fields of an existing entry; the others keep their stored values.

        ``policy`` replaces the stored policy; policy keywords (``jitter=``,
        ``max_runs=``, ...) are set over it.  A read-modify-write (see
        :meth:`update`): a concurrent change is never overwritten.
        """

        def change(info: EntryInfo) -> RedBeatSchedulerEntry:
            chosen = make_policy(name, info.policy if policy is None else policy, **policy_fields)
            return self.entry(
                name,
                info.task if task is None else task,  # type: ignore[arg-type]  # readable entry
                info.schedule if schedule is None else schedule,
                info.args if args is None else args,
                info.kwargs if kwargs is None else kwargs,
                info.options if options is None else options,
                info.enabled if enabled is None else enabled,
                policy=chosen,
            )

        return self.update(name, change)

    def set_enabled(self, name: str, enabled: bool) -> RedBeatSchedulerEntry:
        """Set ``enabled`` (a disabled entry's score is -1); definition, policy and
        run state are kept.  A read-modify-write (see :meth:`update`): two round trips."""
        return self.update(name, lambda info: self.entry(name, **_fields_of(info), enabled=enabled))

    def enable(self, name: str) -> RedBeatSchedulerEntry:
        return self.set_enabled(name, True)

    def disable(self, name: str) -> RedBeatSchedulerEntry:
        return self.set_enabled(name, False)

    def redisbeat_members(self, key: str) -> builtins.list[str]:
        """The members of redisbeat's sorted set ``key`` on this schedule's Redis, as text.

        Only read, never decoded here: :mod:`redbeat.redisbeat_import` parses them as JSON.
        DefinitionError if a member is not text (binary, as Python's pickle writes).
        """
        try:
            return self.store.sorted_set_members(key)
        except UnicodeDecodeError:
            raise DefinitionError(
                key, 'holds binary members (Python pickle?), which redbeat never reads: only JSON'
            ) from None

    def statics(self) -> set[str]:
        """Names of the entries beat wrote from ``beat_schedule`` (it restores them at start)."""
        return self.store.statics()

    def run_now(self, name: str) -> str:
        """Send the entry's task once, now; its score and run state are untouched.

        Returns the task id.  Needs the Celery app whose broker to send to.
        """
        info = self.get(name, history=None)
        if info.error:
            raise DefinitionError(info.key, info.error)
        if self.app is None:
            raise RedBeatError('sending a task needs the Celery app (its broker): pass app=')
        task = self.app.tasks.get(info.task)
        if task is not None:
            result = task.apply_async(info.args, info.kwargs, **info.options)
        else:
            result = self.app.send_task(info.task, info.args, info.kwargs, **info.options)
        return str(result.id)

    # --- consistency ---------------------------------------------------------

    def check(self, page_size: int = 1000, now: datetime | None = None) -> builtins.list[Problem]:
        """Everything inconsistent in the stored schedule; nothing is changed.

        Besides malformed entries and hash/sorted-set mismatches: an enabled
        entry whose score is later than its definition allows (its definition
        was changed without its score, as ``HSET`` alone does) or -1 while
        it has occurrences left (it would never run).
        """
        moment = now or datetime.now(timezone.utc)
        # Without the app, its zone is unknown: crontabs without their own zone are not judged.
        tz = self.context.tz if self.app is not None else None
        problems: builtins.list[Problem] = []
        for info in self.entries(page_size=page_size):
            problems.extend(_problems(info))
            problem = _score_problem(info, moment, tz)
            if problem is not None:
                problems.append(problem)
        return problems

    def fix(self, problems: Sequence[Problem], now: datetime | None = None) -> int:
        """Repair what can be repaired without losing data; returns how many were fixed.

        Schedules unscheduled hashes, sets disabled entries' scores to -1 and
        drops sorted-set members that have no hash.  Never deletes a hash.
        """
        moment = now or datetime.now(timezone.utc)
        by_kind: dict[str, builtins.list[str]] = {}
        for problem in problems:
            if problem.fixable:
                by_kind.setdefault(problem.kind, []).append(problem.name)
        fixed = self._schedule_orphans(by_kind.get('unscheduled', []), moment)
        for name in by_kind.get('stale-disabled-score', []):
            info = self.get(name, history=None)
            fixed += self.store.set_state(info.key, info.meta, timing.NEVER)
        for name in by_kind.get('stale-score', []) + by_kind.get('never-runs', []):
            fixed += self._rescore(name, moment)
        dangling = by_kind.get('dangling-member', [])
        if dangling:
            # Both spellings of the member; each goes only if its hash is still missing.
            members = [*(self.config.keys.entry(n) for n in dangling), *dangling]
            fixed += self.store.prune_members(members)
        return fixed

    def _rescore(self, name: str, now: datetime) -> int:
        """Score an entry as its definition says (as saving it again would); 1 if done."""
        info = self.get(name, history=None)
        if info.error or info.schedule is None or not info.enabled:
            return 0
        score = timing.score_after_change(
            info.key, info.schedule, True, info.last_run_at, now, self.context.tz, info.policy
        )
        return int(self.store.set_state(info.key, info.meta, score))

    def _schedule_orphans(self, names: Sequence[str], now: datetime) -> int:
        scores: dict[str, float] = {}
        for name in names:
            info = self.get(name, history=None)
            if info.error or info.schedule is None:
                continue
            scores[info.key] = timing.score_after_change(
                info.key, info.schedule, info.enabled, info.last_run_at, now, self.context.tz,
                info.policy,
            )  # fmt: skip
        return self.store.add_missing(scores)


@dataclass(frozen=True)
class ImportPlan:
    """What :meth:`ScheduleClient.plan_import` found: a step per entry, what to write and remove."""

    steps: builtins.list[tuple[str, str]]  # (sign, name): + add, ~ update, = same, - remove
    changed: builtins.list[RedBeatSchedulerEntry]
    removed: builtins.list[str]


def entry_item(entry: RedBeatSchedulerEntry) -> dict[str, Any]:
    """``entry`` as :meth:`EntryInfo.as_item` shows a stored one (to tell them apart)."""
    item: dict[str, Any] = json.loads(dumps(entry.definition(), full=True))
    del item['name']
    return item | policy_item(entry.policy)


def one_off_finish(on_finish: str | None, delete_after: bool) -> str:
    """A one-off entry's finish action: it cleans up after itself once it ran,
    deleted with ``delete_after``, else as ``on_finish`` says, else disabled."""
    return 'delete' if delete_after else on_finish or 'disable'


def _fields_of(info: EntryInfo) -> dict[str, Any]:
    """The fields of a readable entry, to build it again with some changed (policy too)."""
    fields = info._fields()
    del fields['name'], fields['enabled']
    fields['policy'] = info.policy
    return fields


def _problems(info: EntryInfo) -> Iterator[Problem]:
    if not info.exists:
        yield Problem('dangling-member', info.name, 'in the schedule but has no hash', True)
        return
    if info.error:
        fixable = False
        yield Problem('malformed', info.name, info.error, fixable)
    if not info.scheduled:
        detail = 'hash is not in the schedule sorted set'
        yield Problem('unscheduled', info.name, detail, info.error is None)
    elif info.error is None and not info.enabled and info.score != timing.NEVER:
        detail = f'disabled but its score is {info.score!r}, not -1'
        yield Problem('stale-disabled-score', info.name, detail, True)


def _score_problem(info: EntryInfo, now: datetime, tz: tzinfo | None) -> Problem | None:
    """An enabled entry's score that its definition cannot explain (``tz``: the app's zone,
    None if unknown).

    A score is never later than the definition's next occurrence after the
    last run or now, whichever is later (beat and every writer compute it
    so), so a later one is left from an older definition: ``HSET`` without
    ``ZADD``.  A score of -1 with occurrences left means the entry never runs.
    """
    sched = info.schedule
    if info.error or sched is None or not info.enabled or info.score in (None, timing.NOW):
        return None
    if tz is None and isinstance(sched, crontab) and info.policy.tz is None:
        return None  # read in the app's zone, unknown here
    since = now if info.last_run_at is None else max(timing.utc(info.last_run_at), now)
    upcoming = timing.occurrence_after(sched, info.policy, since, tz or timezone.utc)
    if upcoming is None:
        return None
    if info.score == timing.NEVER:
        detail = 'enabled but its score is -1, so beat never runs it'
        return Problem('never-runs', info.name, detail, True)
    latest = timing.due_score(info.key, upcoming, info.policy)
    assert info.score is not None
    if info.score > latest + 1.0:  # a second of slack for float rounding
        due = timing.from_score(info.score)
        detail = (
            f'scheduled for {due:%Y-%m-%d %H:%M:%S} UTC, later than its definition allows '
            f'({timing.utc(upcoming):%Y-%m-%d %H:%M:%S} UTC): the definition changed without '
            'its score (HSET without ZADD)'
        )
        return Problem('stale-score', info.name, detail, True)
    return None


#: The name of :class:`ScheduleClient` before 3.0, kept for code written for it.
Schedule = ScheduleClient
