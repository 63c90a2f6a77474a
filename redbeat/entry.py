"""The entry model: :class:`RedBeatSchedulerEntry`, and saving/loading entries.

An entry is Celery's :class:`~celery.beat.ScheduleEntry` plus ``enabled`` and
the Redis key it lives under.  Its properties are pure (no Redis I/O);
``save``, ``delete``, ``from_key`` and ``reschedule`` each make one or two
round trips through the app's :class:`~redbeat.store.ScheduleStore`, and
:func:`save_entries` / :func:`delete_entries` do the same for many at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone, tzinfo
from functools import cached_property
from typing import Any

from celery import Celery
from celery.app import app_or_default
from celery.beat import ScheduleEntry
from celery.schedules import BaseSchedule, schedstate

from . import timing
from .client import redis_from_config
from .codec import (
    check_fields,
    decode_definition,
    decode_meta,
    dumps,
    encode_definition,
    encode_meta,
)
from .compat import context_for
from .config import RedBeatConfig
from .converters import zone
from .errors import DefinitionError, EntryNotFound, RedBeatError
from .policy import DEFAULT as DEFAULT_POLICY
from .policy import Policy
from .store import GONE, Row, SaveItem, ScheduleStore
from .validation import InvalidValue, check_document, check_schedule

_SAVE_ATTEMPTS = 5
_UNSET = datetime(1970, 1, 1, tzinfo=timezone.utc)


class StoreContext:
    """Where entries are stored: a store and the settings scores are computed with.

    Callers are given one (beat builds it from its config, :class:`~redbeat.api.ScheduleClient`
    from its own); no I/O until the store is first used.
    """

    def __init__(self, config: RedBeatConfig, store: ScheduleStore | None = None) -> None:
        self.config = config
        self.keys = config.keys
        self.tz: tzinfo = zone(config.timezone)
        #: The app-wide policy an entry's own policy falls back on.
        self.defaults = Policy(
            missed=config.missed_runs,
            catchup_window=config.catchup_window,
            history=config.history_size,
        )
        if store is not None:
            self.__dict__['store'] = store  # the cached_property's slot

    @cached_property
    def store(self) -> ScheduleStore:
        """The schedule's store, made on first use.

        A Redis Cluster client reads the slot map when it is made, so beat can
        start (and retry) while the cluster is unreachable; until it answers,
        this raises :class:`redis.ConnectionError` and the next use tries again.
        """
        return ScheduleStore(redis_from_config(self.config), self.config.keys)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class RedBeatSchedulerEntry(ScheduleEntry):  # type: ignore[misc]
    """A periodic task stored in Redis.

    ``last_run_at`` is None until the entry has a run state; saving a new
    entry records the save time there, so it first fires at its schedule's
    first occurrence after the save (never at once, then again on time).
    """

    def __init__(
        self,
        name: str | None = None,
        task: str | None = None,
        schedule: Any = None,
        args: Sequence[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
        enabled: bool = True,
        app: Celery | None = None,
        last_run_at: datetime | None = None,
        total_run_count: int | None = None,
        relative: bool = False,
        policy: Policy | dict[str, Any] | None = None,
        context: StoreContext | None = None,
    ) -> None:
        super().__init__(
            name=name,
            task=task,
            schedule=schedule,
            args=list(args or ()),
            kwargs=dict(kwargs or {}),
            options=dict(options or {}),
            relative=relative,
            app=app_or_default(app),
            last_run_at=_UNSET,  # not None: spares Celery's default_now(), replaced below
        )
        self.enabled = bool(enabled)
        if isinstance(policy, dict):
            policy = Policy.from_dict(name or '<unnamed entry>', policy)
        #: Time zone, missed runs, bounds, jitter, history (see :class:`redbeat.policy.Policy`).
        self.policy: Policy = policy or DEFAULT_POLICY
        # Celery's ScheduleEntry sets "now" here; None means "no run state yet".
        self.last_run_at = last_run_at
        self.total_run_count = total_run_count or 0
        #: Set on the entries beat's tick hands to ``maybe_due``: the occurrence
        #: being sent, already claimed in Redis (so the entry is due).
        self.occurrence: datetime | None = None
        #: The store this entry belongs to when its maker gave one (the API does);
        #: else the app's (celery-redbeat 2.x's way: :func:`redbeat.compat.context_for`).
        self.context = context

    # --- pure properties ---------------------------------------------------

    @property
    def binding(self) -> StoreContext:
        """The entry's store and settings: those it was given, else its app's."""
        return self.context or context_for(self.app)

    @property
    def key(self) -> str:
        """The Redis hash key of this entry."""
        return self.binding.config.keys.entry(self.name)

    @property
    def due_at(self) -> datetime | None:
        """When the entry is due next (now if it never ran); None if never again."""
        now = utcnow()
        if self.last_run_at is None:
            return now
        due = timing.occurrence_after(self.schedule, self.policy, self.last_run_at, self.binding.tz)
        if due is not None and due < now:
            return now
        return due

    @property
    def score(self) -> float:
        """The sorted-set score: due time in UTC UNIX seconds; -1 if disabled or finished."""
        if not self.enabled:
            return timing.NEVER
        return timing.due_score(self.key, self.due_at, self.policy)

    def is_due(self) -> schedstate:
        """Celery's ``(is_due, seconds until next check)``."""
        if self.occurrence is not None:
            following = timing.occurrence_after(
                self.schedule, self.policy, self.occurrence, self.binding.tz
            )
            wait = None if following is None else max(0.0, (following - utcnow()).total_seconds())
            return schedstate(True, wait)
        if not self.enabled:
            return schedstate(False, 5.0)
        due = self.due_at
        if due is None:
            return schedstate(False, None)
        now = utcnow()
        if due > now:
            return schedstate(False, (due - now).total_seconds())
        following = timing.occurrence_after(self.schedule, self.policy, now, self.binding.tz)
        seconds = None if following is None else (following - now).total_seconds()
        return schedstate(True, seconds)

    def definition(self) -> dict[str, Any]:
        """The fields stored in the ``definition`` JSON."""
        return {
            'name': self.name,
            'task': self.task,
            'schedule': self.schedule,
            'args': list(self.args),
            'kwargs': dict(self.kwargs),
            'options': dict(self.options),
            'enabled': self.enabled,
        }

    def _next_instance(
        self, last_run_at: datetime | None = None, only_update_last_run_at: bool = False
    ) -> RedBeatSchedulerEntry:
        """A copy after one more run (pure: nothing is written to Redis)."""
        return type(self)(
            **self.definition(),
            app=self.app,
            last_run_at=last_run_at or utcnow(),
            total_run_count=self.total_run_count + (0 if only_update_last_run_at else 1),
            policy=self.policy,
            context=self.context,
        )

    __next__ = next = _next_instance

    def __repr__(self) -> str:
        state = '' if self.enabled else ' disabled'
        call = f'{self.task}(*{self.args}, **{self.kwargs})'
        return f'<RedBeatSchedulerEntry: {self.name} {call} {self.schedule}{state}>'

    # --- Redis I/O ---------------------------------------------------------

    def save(self) -> RedBeatSchedulerEntry:
        """Store the definition; keep any run state already stored."""
        save_entries([self])
        return self

    def delete(self) -> None:
        """Remove the entry (hash and schedule member)."""
        self.binding.store.delete([self.name])

    def reschedule(self, last_run_at: datetime | None = None) -> None:
        """Set the last run (default: now) and move the due time to match.

        EntryNotFound when the entry is not stored (it is not created by this).
        """
        self.last_run_at = last_run_at or utcnow()
        store = self.binding.store
        meta = encode_meta(self.last_run_at, self.total_run_count)
        if not store.set_state(self.key, meta, self.score):
            raise EntryNotFound(self.key)  # deleted: not created again holding only meta

    @classmethod
    def from_key(cls, key: str, app: Celery | None = None) -> RedBeatSchedulerEntry:
        """Load the entry stored under ``key`` (EntryNotFound, DefinitionError)."""
        bound = context_for(app)
        row, _score = bound.store.read(bound.config.keys.key_of(key))
        if row.error:
            raise DefinitionError(row.key, row.error)
        if row.definition is None:
            raise EntryNotFound(row.key)
        app = app_or_default(app)
        return entry_from_row(app, row.key, row.definition, row.meta, cls, row.policy)

    # --- celery-redbeat 2.x's helpers ----------------------------------------

    @staticmethod
    def generate_key(app: Celery | None, name: str) -> str:
        """The Redis key of the entry called ``name`` in ``app``'s schedule."""
        return context_for(app).keys.entry(name)

    @staticmethod
    def decode_definition(definition: str) -> dict[str, Any]:
        """A stored definition's fields (``schedule`` built); DefinitionError if bad."""
        return decode_definition('<definition>', definition)

    @staticmethod
    def decode_meta(meta: str | None, app: Celery | None = None) -> dict[str, Any]:
        """A stored run state as celery-redbeat 2.x returned it: ``{'last_run_at': ...}``."""
        if not meta:
            return {'last_run_at': None}
        last_run_at, count = decode_meta('<meta>', meta)
        return {'last_run_at': last_run_at, 'total_run_count': count}

    @staticmethod
    def load_definition(
        key: str, app: Celery | None = None, definition: str | None = None
    ) -> dict[str, Any]:
        """The definition stored under ``key`` (or given); KeyError if there is none."""
        if definition is None:
            bound = context_for(app)
            row, _score = bound.store.read(bound.keys.key_of(key))
            definition = row.definition
        if not definition:
            raise EntryNotFound(key)
        return decode_definition(key, definition)

    @staticmethod
    def load_meta(key: str, app: Celery | None = None) -> dict[str, Any]:
        """The run state stored under ``key`` (``{'last_run_at': None}`` if none)."""
        bound = context_for(app)
        row, _score = bound.store.read(bound.keys.key_of(key))
        return RedBeatSchedulerEntry.decode_meta(row.meta)

    @property
    def rank(self) -> int | None:
        """The entry's position in the schedule, soonest due first (None if absent).

        One Redis round trip on each access, as in celery-redbeat 2.x.
        """
        return self.binding.store.rank(self.key)


def entry_from_row(
    app: Celery,
    key: str,
    definition: str,
    meta: str | None,
    cls: type[RedBeatSchedulerEntry] = RedBeatSchedulerEntry,
    policy_json: str | None = None,
) -> RedBeatSchedulerEntry:
    """An entry from its stored strings (DefinitionError if they are bad)."""
    fields = decode_definition(key, definition)
    last_run_at, count = decode_meta(key, meta)
    policy = Policy.from_json(key, policy_json)
    return cls(app=app, last_run_at=last_run_at, total_run_count=count, policy=policy, **fields)


def check_entry(entry: RedBeatSchedulerEntry) -> None:
    """DefinitionError unless the entry can be stored and scheduled."""
    label = entry.name or '<unnamed entry>'
    if not isinstance(entry.name, str) or not entry.name or entry.name.startswith(':'):
        raise DefinitionError(label, 'name must be a non-empty string not starting with ":"')
    plain = (
        isinstance(entry.task, str)
        and entry.task
        and isinstance(entry.schedule, BaseSchedule)
        and isinstance(entry.args, (list, tuple))
        and isinstance(entry.kwargs, dict)
        and isinstance(entry.options, dict)
        and isinstance(entry.enabled, bool)
    )
    if not plain:  # else what check_fields accepts, told at a fraction of its cost
        check_fields(label, entry.definition())
        if not isinstance(entry.schedule, BaseSchedule):
            raise DefinitionError(label, f'unsupported schedule {entry.schedule!r}')
    try:
        check_schedule(entry.schedule)  # before any schedule math: an rrule interval of 0 hangs it
    except InvalidValue as exc:
        raise DefinitionError(label, str(exc)) from None


def save_entries(
    entries: Sequence[RedBeatSchedulerEntry],
    now: datetime | None = None,
    notify: bool = True,
    context: StoreContext | None = None,
) -> None:
    """Store many entries in ``context`` (default: the first entry's), keeping their run state.

    A new entry gets a run state of "saved at ``now``, run 0 times", so it is
    first due at its schedule's first occurrence after ``now``.  An entry whose
    definition did not change keeps its due time.  New and unchanged entries
    take one round trip; entries whose stored definition changed take one more
    (written again with the run state the first write found).
    """
    if not entries:
        return
    bound = context or entries[0].binding
    now = now or utcnow()
    for entry in entries:
        check_entry(entry)
    if bound.keys.lock is not None:  # a lock key under the prefix is no entry's name
        for entry in entries:
            bound.keys.entry_checked(entry.name)
    items = save_items(bound, entries, now)
    saved = bound.store.save_report(items, notify=notify)
    settle_saves(bound, entries, saved.flags, now, notify, saved.stale)


def save_items(
    bound: StoreContext, entries: Sequence[RedBeatSchedulerEntry], now: datetime
) -> list[SaveItem]:
    """The first write of checked ``entries``: each as if new (no run state stored yet).

    Write them with :meth:`ScheduleStore.save_report`, then pass what it returns to
    :func:`settle_saves`.
    """
    metas: dict[tuple[datetime, int], str] = {}  # most new entries share "saved now, 0 runs"
    return [_save_item(bound, e, None, None, None, now, metas) for e in entries]


def settle_saves(
    bound: StoreContext,
    entries: Sequence[RedBeatSchedulerEntry],
    flags: Sequence[int],
    now: datetime,
    notify: bool = True,
    stale: Mapping[int, Row] | None = None,
) -> None:
    """Finish a save: write again the entries whose stored run state was not the one
    assumed (``flags`` of the write, in the order of ``entries``), computed from the
    row the write found (``stale``, by index, as :meth:`ScheduleStore.save_report` gives
    it; read again where it is missing): one round trip more, each a compare-and-set."""
    pending = _pending(entries, flags, stale or {})
    # The run state each entry was first written with ("saved now" unless it had
    # one): an attempt that finds no meta (the entry was deleted meanwhile) uses
    # it, not the deleted entry's run state an earlier attempt read.
    own = {id(e): (e.last_run_at, e.total_run_count) for e, _ in pending}
    for _ in range(_SAVE_ATTEMPTS):
        if not pending:
            return
        unknown = [e.key for e, row in pending if row is None]
        fetched = iter(bound.store.fetch(unknown))
        rows = [row or next(fetched) for _, row in pending]
        retried = [e for e, _ in pending]
        for entry, row in zip(retried, rows):
            if row.meta is None:
                entry.last_run_at, entry.total_run_count = own[id(entry)]
        items = [
            _save_item(bound, e, row.definition, row.meta, row.policy, now)
            for e, row in zip(retried, rows)
        ]
        saved = bound.store.save_report(items, notify=notify)
        pending = _pending(retried, saved.flags, saved.stale)
    raise RedBeatError(f'{pending[0][0].key}: run state kept changing while saving; try again')


def _pending(
    entries: Sequence[RedBeatSchedulerEntry], flags: Sequence[int], stale: Mapping[int, Row]
) -> list[tuple[RedBeatSchedulerEntry, Row | None]]:
    """The entries to retry after a write that returned ``flags``, each with the row
    that write found stored (None: not known, read it)."""
    wrong = [e.key for e, flag in zip(entries, flags) if flag < 0]
    if wrong:
        raise DefinitionError(wrong[0], 'key holds a value of the wrong type (a hash is expected)')
    return [(e, stale.get(i)) for i, (e, flag) in enumerate(zip(entries, flags)) if flag == 0]


def _save_item(
    bound: StoreContext,
    entry: RedBeatSchedulerEntry,
    stored_definition: str | None,
    meta: str | None,
    stored_policy: str | None,
    now: datetime,
    metas: dict[tuple[datetime, int], str] | None = None,
) -> SaveItem:
    key = bound.keys.entry(entry.name)
    try:
        definition = encode_definition(entry.definition())
        check_document('definition', definition)  # what beat would refuse, refused here
    except (TypeError, ValueError, RecursionError) as exc:  # a set, NaN, too big, too deep
        raise DefinitionError(key, _unstorable(entry, exc)) from None
    new_meta = None
    last_run_at: datetime | None
    if meta is None:
        last_run_at = now if entry.last_run_at is None else entry.last_run_at
        count = entry.total_run_count
        state = (last_run_at, count)
        new_meta = None if metas is None else metas.get(state)
        if new_meta is None:
            new_meta = encode_meta(last_run_at, count)
            if metas is not None:
                metas[state] = new_meta
    else:
        last_run_at, count = decode_meta(key, meta)
    entry.last_run_at, entry.total_run_count = last_run_at, count
    policy = entry.policy.merged(bound.defaults)
    try:
        score = timing.score_after_change(
            key, entry.schedule, entry.enabled, last_run_at, now, bound.tz, policy
        )
    except TypeError as exc:  # a schedule type redbeat cannot compute
        raise DefinitionError(key, str(exc)) from None
    except OverflowError:  # a run state or bound so late the next time is past year 9999
        raise DefinitionError(key, 'the next run would be after the year 9999') from None
    policy_json = entry.policy.to_json()
    keep = stored_definition == definition and stored_policy == policy_json and meta is not None
    return SaveItem(entry.name, definition, meta, new_meta, score, keep, policy_json)


def save_if_unchanged(
    entry: RedBeatSchedulerEntry,
    read: Row,
    now: datetime | None = None,
    context: StoreContext | None = None,
) -> int:
    """Write ``entry`` over the stored entry ``read`` only if that is still what is
    stored (definition, policy and run state): one round trip.

    Returns :meth:`ScheduleStore.save`'s flag: ``WRITTEN``, else nothing was
    written: ``CHANGED`` or ``STALE_META`` (another writer or beat changed it:
    read again), ``GONE`` (deleted) or ``WRONG_TYPE``.  The score is computed
    from the run state read, as a save that found it would.
    """
    check_entry(entry)
    bound = context or entry.binding
    if read.definition is None:
        return GONE
    item = _save_item(bound, entry, read.definition, read.meta, read.policy, now or utcnow())
    (flag,) = bound.store.save([item._replace(read=(read.definition, read.policy))])
    return flag


def _unstorable(entry: RedBeatSchedulerEntry, exc: BaseException) -> str:
    """Why an entry cannot be stored, naming the field that JSON cannot hold."""
    if isinstance(exc, InvalidValue):
        return str(exc)
    for name in ('args', 'kwargs', 'options'):
        try:
            check_document(name, dumps(getattr(entry, name)))
        except (TypeError, ValueError, RecursionError) as inner:
            reason = 'nests too deeply' if isinstance(inner, RecursionError) else str(inner)
            return reason if isinstance(inner, InvalidValue) else f'{name}: {reason}'
    return str(exc)


def delete_entries(names: Iterable[str], app: Celery | None = None) -> int:
    """Delete entries of ``app``'s schedule by name in one round trip; returns how many existed."""
    return context_for(app).store.delete(names)
