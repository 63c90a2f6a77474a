"""All Redis I/O of redbeat: one :class:`ScheduleStore` over an injected client.

The store moves strings: definitions and meta as JSON text, scores as the
exact strings Redis returns.  Decoding and schedule math happen elsewhere, so
every method here is one round trip (a pipeline or a script) whatever the
number of entries it is given, unless its docstring says otherwise.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, NamedTuple, Union

# redis-py < 7 (the newest on Python 3.9) types every command's reply as
# ``Awaitable | Any``; the ``unused-ignore`` ignores below are for that typing.
import redis
from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.exceptions import NoScriptError

from .errors import LeadershipLost
from .keys import Keys
from .validation import InvalidValue, check_size

#: redis-py's option to hand a reply over as bytes: entries are decoded one by one
#: (see :func:`_text`), so one stored byte that is not UTF-8 spoils only its entry.
_RAW: dict[str, Any] = {'NEVER_DECODE': []}

logger = logging.getLogger('celery.beat')

#: The entry hash fields redbeat reads (celery-redbeat 2.x reads the first two).
_FIELDS = ('definition', 'meta', 'policy')
#: What management reads show beside them: the counters of occurrences not sent.
_INFO_FIELDS = (*_FIELDS, 'missed', 'skipped')
#: Entries per ``save.lua`` call: bounds how long one call holds Redis.
SAVE_CHUNK = 10_000
#: Seconds the heartbeat key outlives the last tick that wrote it.
HEARTBEAT_TTL = 86_400
_SAVE_KEYS = 2  # save.lua's KEYS: the schedule and the statics set
#: A score to write: a number, or the exact string Redis returned.
Score = Union[float, str]


def _script(client: redis.Redis, name: str) -> Script:
    source = (resources.files('redbeat') / 'lua' / name).read_text(encoding='utf-8')
    return client.register_script(source)


def _exact(raw: bytes | str) -> str:
    """A score as Redis sent it (redis-py hands the cast function bytes)."""
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _score_text(score: Score) -> str:
    return score if isinstance(score, str) else repr(float(score))


class Call(NamedTuple):
    """One script call: what :meth:`ScheduleStore._run` and ``_queue_call`` send."""

    script: Script
    keys: tuple[Any, ...]
    args: tuple[Any, ...]
    raw: bool = False  # leave the reply as bytes (see _RAW)


@dataclass(frozen=True)
class Row:
    """One entry as stored: its hash fields, or the error reading them gave."""

    key: str
    definition: str | None = None
    meta: str | None = None
    error: str | None = None
    policy: str | None = None


class SaveItem(NamedTuple):
    """An entry definition to write (see ``lua/save.lua``); a tuple: bulk saves make many."""

    name: str
    definition: str
    expected_meta: str | None
    new_meta: str | None
    score: Score
    keep_score: bool = False  # leave the score alone if the entry is scheduled
    policy: str | None = None  # None: the default policy (no field stored)
    #: ``(definition, policy)`` as the writer read them: write only if both are
    #: still stored (a read-modify-write); None: a blind save, the last writer wins.
    read: tuple[str, str | None] | None = None


class Saved(NamedTuple):
    """What :meth:`ScheduleStore.save_report` did: a flag per item (as :meth:`~ScheduleStore.save`
    returns them) and, by index, the row stored for each item flagged ``STALE_META``,
    as the script found it: the writer retries from it without reading it again."""

    flags: list[int]
    stale: dict[int, Row]


@dataclass(frozen=True)
class Startup:
    """What :meth:`ScheduleStore.startup` wrote and read."""

    flags: list[int]  # per item, as :meth:`ScheduleStore.save` returns them
    statics: set[str]  # names recorded as static entries before this start and not saved now
    maxmemory_policy: str | None  # None: the server does not tell (CONFIG refused)
    maxmemory: str | None
    orphans: list[str]  # hashes of the first SCAN page without a schedule member
    cursor: int | None  # where the orphan scan goes on: 0 done, None not started (cluster)
    stale: dict[int, Row] = field(default_factory=dict)  # as in :class:`Saved`


@dataclass(frozen=True)
class Claim:
    """Move ``member`` from score ``expected`` to ``score`` (see ``lua/claim.lua``)."""

    key: str
    member: str
    expected: str
    score: Score
    meta: str | None  # None: leave meta alone
    missed: int = 0
    skipped: int = 0
    #: At-least-once mode: (task id, journal record JSON) of each occurrence claimed.
    journal: tuple[tuple[str, str], ...] = ()


@dataclass
class Writes:
    """Bookkeeping after sending, written with the next round trip beat makes anyway.

    Each write is conditional (``lua/finish.lua``): history only while the entry
    exists, a finish action only if the definition is still the text read.
    """

    history: list[tuple[str, str, int]] = field(default_factory=list)  # (name, record, keep)
    #: Finish action "disable": (name, definition read, definition to store).
    disables: list[tuple[str, str, str]] = field(default_factory=list)
    deletes: list[tuple[str, str]] = field(default_factory=list)  # (name, definition read)
    #: Not conditional, not in finish.lua: plain writes queued in the same pipeline.
    heartbeat: str | None = None  # the leader's last tick (JSON), for ``redbeat health``
    events: list[dict[str, str]] = field(default_factory=list)  # for the events stream
    events_maxlen: int = 0  # the stream's cap (XADD MAXLEN ~)
    sent: list[str] = field(default_factory=list)  # task ids confirmed sent: out of the journal

    def __bool__(self) -> bool:
        return self.finishing or self.heartbeat is not None or bool(self.events or self.sent)

    @property
    def finishing(self) -> bool:
        """True when there is work for ``finish.lua``."""
        return bool(self.history or self.disables or self.deletes)


@dataclass(frozen=True)
class Inspected:
    """What the management reads found for one key (see :meth:`ScheduleStore.inspect`)."""

    row: Row
    exists: bool  # the key exists at all (a hash without ``definition`` is not missing)
    missed: int = 0  # the entry's counters of occurrences not sent
    skipped: int = 0


@dataclass(frozen=True)
class Status:
    """What ``redbeat status`` shows, read in one round trip by :meth:`ScheduleStore.overview`."""

    entries: int
    due: int
    overdue: int
    upcoming: list[tuple[str, float]]  # (member, score), earliest first
    lock_holder: str | None
    lock_ttl: float | None  # seconds; None when free or without expiry
    heartbeat: str | None = None  # JSON the leader wrote at its last tick
    maxmemory_policy: str | None = None  # None: not asked, or the server does not tell
    maxmemory: str | None = None


@dataclass(frozen=True)
class Due:
    """A due member of the schedule: as stored in the sorted set, and its hash."""

    member: str
    score: str  # exact, as Redis returned it
    row: Row


@dataclass(frozen=True)
class Claimed:
    """What :meth:`ScheduleStore.claim` found: per-claim flags, the next due rows, next due."""

    flags: list[bool]
    due: list[Due]
    next_due: float | None


@dataclass(frozen=True)
class Restore:
    """Undo a claim: put back ``score`` and ``meta`` if the claim still stands."""

    key: str
    claimed: Score
    score: Score
    meta: str | None
    journal: tuple[str, ...] = ()  # the claim's journal fields (task ids), dropped with it


class ScheduleStore:
    """The schedule in Redis.  Constructing it does no I/O."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys
        #: Redis Cluster: pipelines refuse PUBLISH, and SCAN must visit every primary.
        self.cluster = isinstance(client, RedisCluster)
        self._save = _script(client, 'save.lua')
        self._claim = _script(client, 'claim.lua')
        self._rollback = _script(client, 'rollback.lua')
        self._due = _script(client, 'due.lua')
        self._prune = _script(client, 'prune.lua')
        self._orphans = _script(client, 'orphans.lua')
        self._delete = _script(client, 'delete.lua')
        self._finish = _script(client, 'finish.lua')
        self._state = _script(client, 'state.lua')
        self._scripts = (self._due, self._claim, self._save, self._rollback, self._prune,
                         self._orphans, self._delete, self._finish, self._state)  # fmt: skip

    # --- the script dispatcher: every script call goes through these ----------

    def _queue_call(self, pipe: Any, call: Call) -> Any:
        """Queue ``call`` on ``pipe`` (or, given the client, make it and return the reply).

        EVALSHA by name, because redis-py's cluster pipeline refuses
        ``.evalsha()``, and not through ``Script`` objects: those cost a SCRIPT
        EXISTS round trip.  On Cluster it goes to the node of the schedule's
        slot (every key of a script shares it), named here: left to find it,
        redis-py asks a node for the script's keys (COMMAND GETKEYS), one more
        round trip per script.  Scripts publish change notices themselves, as
        a cluster pipeline refuses PUBLISH.
        """
        options: dict[str, Any] = dict(_RAW) if call.raw else {}
        if self.cluster:
            options['target_nodes'] = self.client.get_node_from_key(  # type: ignore[attr-defined]
                self.keys.schedule
            )
        sha, numkeys = call.script.sha, len(call.keys)
        return pipe.execute_command('EVALSHA', sha, numkeys, *call.keys, *call.args, **options)

    def _call(self, script: Script, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """One script call in its own round trip; its reply (an error raised)."""
        (reply,) = self._run([Call(script, tuple(keys), tuple(args))])
        if isinstance(reply, Exception):
            raise reply
        return reply

    def _run(self, calls: Sequence[Call]) -> list[Any]:
        """The replies of script ``calls``, in one round trip."""
        if len(calls) > 1:
            return self._pipelined(lambda pipe: self._queue(pipe, calls))
        try:  # one call: without a pipeline's own cost (single saves are common)
            return [self._queue_call(self.client, calls[0])]
        except NoScriptError:
            self.load_scripts()  # Redis restarted or was flushed
            return [self._queue_call(self.client, calls[0])]

    def _queue(self, pipe: Any, calls: Iterable[Call]) -> None:
        for call in calls:
            self._queue_call(pipe, call)

    def _pipelined(self, queue: Callable[[Any], None]) -> list[Any]:
        """Run the commands ``queue`` puts on a pipeline, again (writes too) if Redis
        lacked a script: it restarted or was flushed, and nothing ran past the error."""
        for attempt in (1, 2):
            with self.client.pipeline(transaction=False) as pipe:
                queue(pipe)
                replies: list[Any] = pipe.execute(raise_on_error=False)
            if attempt == 1 and any(isinstance(r, NoScriptError) for r in replies):
                self.load_scripts()
                continue
            break
        return replies

    def load_scripts(self) -> None:
        """Load the Lua scripts used by sha (after a Redis restart or flush)."""
        for script in self._scripts:
            script.sha = self.client.script_load(script.script)  # type: ignore[assignment, unused-ignore]

    # --- reading -----------------------------------------------------------

    def fetch(self, keys: Sequence[str]) -> list[Row]:
        """Definition and meta of each key, in one pipeline; errors kept per key."""
        if not keys:
            return []
        with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                _hmget(pipe, key)
            replies = pipe.execute(raise_on_error=False)
        return [_row(key, reply) for key, reply in zip(keys, replies)]

    def read(self, key: str) -> tuple[Row, float | None]:
        """One entry and its score (None when it is not in the sorted set)."""
        with self.client.pipeline(transaction=False) as pipe:
            _hmget(pipe, key)
            pipe.zscore(self.keys.schedule, key)
            reply, score = pipe.execute(raise_on_error=False)
        return _row(key, reply), None if isinstance(score, Exception) else score

    def scores(self, members: Sequence[str]) -> list[float | None]:
        """The score of each member (None where it is not in the schedule)."""
        if not members:
            return []
        return list(self.client.zmscore(self.keys.schedule, list(members)))  # type: ignore[arg-type, unused-ignore]

    def scan_entry_keys(self, count: int = 10000) -> Iterator[list[str]]:
        """Batches of entry hash keys under the prefix: hashes with a definition, not
        redbeat's own keys (SCAN, then HEXISTS: two round trips a batch)."""
        if self.cluster:
            yield from self._scan_cluster(count)
            return
        cursor = 0
        while True:
            cursor, found = self.client.scan(  # type: ignore[misc, unused-ignore]
                cursor, match=self.keys.scan_pattern(), count=count, _type='hash', **_RAW
            )
            batch = self._entries_only([k for k in _names(found) if not self.keys.is_internal(k)])
            if batch:
                yield batch
            if cursor == 0:
                return

    def _entries_only(self, keys: Sequence[str]) -> list[str]:
        """The hashes of ``keys`` that have a definition (one round trip): other data
        may share the prefix, and is never listed, matched or deleted as an entry."""
        if not keys:
            return []
        with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hexists(key, 'definition')
            found = pipe.execute(raise_on_error=False)
        return [key for key, has in zip(keys, found) if has is True or has == 1]

    def _scan_cluster(self, count: int) -> Iterator[list[str]]:
        # redis-py's cluster scan_iter walks each primary in turn (one round
        # trip per batch and node); with a hash-tagged prefix all hit one node.
        batch: list[str] = []
        found = self.client.scan_iter(
            match=self.keys.scan_pattern(), count=count, _type='hash', **_RAW
        )
        for raw in found:
            key = _name(raw)
            if key is not None and not self.keys.is_internal(key):
                batch.append(key)
            if len(batch) >= count:
                yield self._entries_only(batch)
                batch = []
        if batch:
            yield self._entries_only(batch)

    def wrong_types(self, lock_key: str | None) -> list[tuple[str, str, str]]:
        """redbeat's own keys that hold another type of value: ``(key, found, wanted)``.

        One round trip.  Told apart so beat can name the key a WRONGTYPE error is about.
        """
        wanted = {self.keys.schedule: 'zset', self.keys.statics: 'set'}
        if lock_key:
            wanted[lock_key] = 'string'
        with self.client.pipeline(transaction=False) as pipe:
            for key in wanted:
                pipe.type(key)
            found = pipe.execute()
        return [
            (key, str(kind), want)
            for (key, want), kind in zip(wanted.items(), found)
            if str(kind) not in ('none', want)
        ]

    def statics(self) -> set[str]:
        return {str(name) for name in self.client.smembers(self.keys.statics)}  # type: ignore[union-attr, unused-ignore]

    def sorted_set_members(self, key: str) -> list[str]:
        """Every member of the sorted set ``key`` (another scheduler's, for an import)."""
        return [str(member) for member in self.client.zrange(key, 0, -1)]  # type: ignore[union-attr, unused-ignore]

    def rank(self, key: str) -> int | None:
        """The position of ``key`` in the schedule, soonest due first; None if absent."""
        found: Any = self.client.zrank(self.keys.schedule, key)
        return None if found is None else int(found)

    def count(self) -> int:
        return int(self.client.zcard(self.keys.schedule))  # type: ignore[arg-type, unused-ignore]

    def config_get(self, name: str) -> str | None:
        """A server setting (CONFIG GET), or None when the server does not allow it."""
        try:
            return _config_value(self.client.config_get(name), name)
        except redis.ResponseError:
            return None

    def listen(self) -> redis.client.PubSub:
        """A subscription to the changes channel (saves and deletes publish there)."""
        pubsub: redis.client.PubSub = self.client.pubsub(  # type: ignore[no-untyped-call]
            ignore_subscribe_messages=True
        )
        pubsub.subscribe(self.keys.changes)  # type: ignore[no-untyped-call, unused-ignore]
        return pubsub

    # --- writing -----------------------------------------------------------

    def save(
        self, items: Sequence[SaveItem], notify: bool = True, statics: bool = False
    ) -> list[int]:
        """Write definitions (one pipeline of script calls).

        Per item: ``WRITTEN`` (or already stored unchanged), ``STALE_META`` the
        stored meta is not the expected one (read and retry), ``WRONG_TYPE``
        the key is not a hash; for an item with ``read`` (a read-modify-write),
        ``CHANGED`` its definition or policy is no longer the text read, and
        ``GONE`` it has no definition any more (deleted): nothing written.  With
        ``statics``, the items' names are also recorded as the static entries'.
        """
        return self.save_report(items, notify, statics).flags

    def save_report(
        self, items: Sequence[SaveItem], notify: bool = True, statics: bool = False
    ) -> Saved:
        """:meth:`save`, also giving the stored row of each item it did not write because
        its meta was not the expected one (``STALE_META``)."""
        if not items:
            return Saved([], {})
        return self._saved(items, self._run(self._save_calls(items, notify, statics)))

    def _saved(self, items: Sequence[SaveItem], replies: Sequence[Any]) -> Saved:
        """The flags and stale rows of the ``save.lua`` ``replies`` (bytes) for ``items``."""
        flags: list[int] = []
        stale: dict[int, Row] = {}
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
            found = iter(reply[1])
            for flag in reply[0].decode():
                if flag == '0':
                    fields = [next(found), next(found), next(found)]
                    stale[len(flags)] = _row(self.keys.entry(items[len(flags)].name), fields)
                flags.append(_FLAGS[flag])
        return Saved(flags, stale)

    def _save_calls(
        self, items: Sequence[SaveItem], notify: bool, statics: bool = False
    ) -> list[Call]:
        """The ``save.lua`` calls for ``items``, ``SAVE_CHUNK`` a call."""
        keys = (self.keys.schedule, self.keys.statics)
        head = (self.keys.changes if notify else '', self.keys.prefix, '1' if statics else '0')
        calls = []
        for start in range(0, len(items), SAVE_CHUNK):
            chunk = items[start : start + SAVE_CHUNK]
            definitions = '\n'.join([item.definition for item in chunk])
            if definitions.count('\n') != len(chunk) - 1:
                raise ValueError('a definition holds a newline: not compact JSON')
            values = (*head, definitions, _save_values(chunk))
            # Raw: the stale rows are decoded field by field, as reads are (see _row).
            calls.append(Call(self._save, keys, values, raw=True))
        return calls

    def startup(self, items: Sequence[SaveItem], scan: int) -> Startup:
        """Beat's start-up writes and reads, in one round trip whatever their number.

        Reads the eviction settings, writes ``items`` (as :meth:`save`) and
        records their names as the static entries' (telling which names were
        recorded before and are not saved now), then looks for orphan hashes
        on a first SCAN page of ``scan`` keys (:meth:`orphans` goes on from
        ``Startup.cursor``).  On Redis Cluster the same is done in several
        round trips, and the orphan scan is left to :meth:`scan_entry_keys`.
        """
        calls = self._save_calls(items, notify=True, statics=True)
        if self.cluster:  # cluster pipelines route by key: CONFIG and SCAN have none
            saved = self._run(calls) if calls else []
            written = self._saved(items, saved)
            return Startup(
                written.flags,
                _not_saved(saved) if saved else self.statics(),
                self.config_get('maxmemory-policy'),
                self.config_get('maxmemory'),
                orphans=[],
                cursor=None,
                stale=written.stale,
            )

        def queue(pipe: Any) -> None:
            pipe.config_get('maxmemory-policy')
            pipe.config_get('maxmemory')
            if not calls:  # no static entries: every one recorded is gone
                pipe.smembers(self.keys.statics)
            self._queue(pipe, calls)
            self._queue_orphans(pipe, 0, scan)

        replies = self._pipelined(queue)
        policy, maxmemory = replies[:2]
        saved = replies[2:-1]
        cursor, orphans = _orphans_page(replies[-1])
        written = self._saved(items, saved) if calls else Saved([], {})
        return Startup(
            written.flags,
            _not_saved(saved) if calls else _members(saved[0]),
            _config_value(policy, 'maxmemory-policy'),
            _config_value(maxmemory, 'maxmemory'),
            orphans,
            cursor,
            stale=written.stale,
        )

    def orphans(self, cursor: int, scan: int) -> tuple[int, list[str]]:
        """The next SCAN page's entry hashes without a member: ``(next cursor, keys)``.

        One round trip; cursor 0 back means the scan is complete.  Not on
        Redis Cluster (see :meth:`scan_entry_keys`).
        """
        (reply,) = self._pipelined(lambda pipe: self._queue_orphans(pipe, cursor, scan))
        return _orphans_page(reply)

    def _queue_orphans(self, pipe: Any, cursor: int, scan: int) -> None:
        args = (cursor, self.keys.scan_pattern(), scan, self.keys.prefix)
        self._queue_call(pipe, Call(self._orphans, (self.keys.schedule,), args, raw=True))

    def delete(self, names: Iterable[str], notify: bool = True) -> int:
        """Delete entries (hash, schedule member, history); returns how many existed."""
        return sum(self.delete_each(names, notify))

    def delete_each(self, names: Iterable[str], notify: bool = True) -> list[bool]:
        """Delete entries by name (``lua/delete.lua``, one round trip): per name, whether
        it was an entry.  A key that is not an entry (redbeat's own, another
        application's hash) is never deleted."""
        names = list(names)
        if not names:
            return []
        head = (self.keys.changes if notify else '', self.keys.prefix, self.keys.lock or '')
        calls = [
            Call(self._delete, (self.keys.schedule,), (*head, *names[i : i + SAVE_CHUNK]))
            for i in range(0, len(names), SAVE_CHUNK)
        ]
        flags: list[bool] = []
        for reply in self._run(calls):
            if isinstance(reply, Exception):
                raise reply
            flags += [flag == '1' for flag in str(reply)]
        return flags

    def set_state(self, key: str, meta: str | None, score: Score) -> bool:
        """Store an entry's run state and score as given (reschedule); False, and
        nothing written, when its hash does not exist (``lua/state.lua``)."""
        keys = (self.keys.schedule, key)
        return bool(
            self._call(self._state, keys, (self.keys.changes, meta or '', _score_text(score)))
        )

    def forget_statics(self, names: Iterable[str]) -> None:
        names = list(names)
        if names:
            self.client.srem(self.keys.statics, *names)

    def add_missing(self, scores: Mapping[str, Score]) -> int:
        """Add members that are not in the schedule yet (ZADD NX)."""
        if not scores:
            return 0
        mapping = {key: _score_text(s) for key, s in scores.items()}
        return int(self.client.zadd(self.keys.schedule, mapping, nx=True))  # type: ignore[arg-type]

    def due(
        self, now: float, limit: int, peek: bool = False, writes: Writes | None = None
    ) -> tuple[list[Due], float | None]:
        """Up to ``limit`` entries due at ``now``, earliest first, with their fields.

        With ``peek``, also the first score after ``now`` (same round trip): an
        idle tick costs this one call.  ``writes`` go first in the same round trip.
        """
        finish, notes = self._finish_call(writes), self._notes(writes)

        def queue(pipe: Any) -> None:
            if finish is not None:
                self._queue_call(pipe, finish)
            _queue_notes(pipe, notes)
            self._queue_call(pipe, self._due_call(now, limit))
            if peek:
                self._peek(pipe, now)

        replies = self._pipelined(queue)
        if finish is not None:
            _finished(replies.pop(0))
        _noted(replies, len(notes))
        following = _first_score(replies[1]) if peek else None
        return self._due_rows(replies[0]), following

    def claim(
        self,
        claims: Sequence[Claim],
        lock_key: str | None,
        token: str | None,
        then_due: tuple[float, int] | None = None,
        peek_after: float | None = None,
        writes: Writes | None = None,
    ) -> Claimed:
        """Claim occurrences; in the same round trip load the next due ones and peek.

        ``then_due=(now, limit)`` reads the entries still due once the claims
        are in (as :meth:`due`); ``peek_after`` reads the first score after it
        (the next due time).  Raises :class:`LeadershipLost` when ``token`` no
        longer holds the lock; then nothing was claimed.
        """
        args: list[Any] = [token or '']
        for c in claims:
            journal = json.dumps([part for pair in c.journal for part in pair]) if c.journal else ''
            args += [_wire(c.member), c.expected, _score_text(c.score), c.meta or '', c.missed,
                     c.skipped, journal]  # fmt: skip
        keys = [
            self.keys.schedule, lock_key or self.keys.schedule, self.keys.journal,
            *(_wire(c.key) for c in claims),
        ]  # fmt: skip
        finish, notes = self._finish_call(writes), self._notes(writes)

        def queue(pipe: Any) -> None:
            if finish is not None:
                self._queue_call(pipe, finish)
            _queue_notes(pipe, notes)
            if claims:
                self._queue_call(pipe, Call(self._claim, tuple(keys), tuple(args)))
            if then_due is not None:
                self._queue_call(pipe, self._due_call(*then_due))
            if peek_after is not None:
                self._peek(pipe, peek_after)

        replies = self._pipelined(queue)
        if finish is not None:
            _finished(replies.pop(0))
        _noted(replies, len(notes))
        flags: list[bool] = []
        if claims:
            result = replies.pop(0)
            if isinstance(result, Exception):
                raise result
            if result == -1:
                raise LeadershipLost(lock_key or '')
            flags = [bool(flag) for flag in result]
        following = _first_score(replies.pop()) if peek_after is not None else None
        rows = self._due_rows(replies.pop()) if then_due is not None else []
        return Claimed(flags, rows, following)

    def write(self, writes: Writes) -> None:
        """Apply bookkeeping writes now (at shutdown: nothing else will carry them)."""
        call, notes = self._finish_call(writes), self._notes(writes)
        if call is not None:
            _finished(self._run([call])[0])
        if notes:
            with self.client.pipeline(transaction=False) as pipe:
                _queue_notes(pipe, notes)
                replies = pipe.execute(raise_on_error=False)
            _noted(replies, len(notes))

    def _due_call(self, now: float, limit: int) -> Call:
        args = (repr(now), limit, self.keys.prefix)
        return Call(self._due, (self.keys.schedule,), args, raw=True)

    def _finish_call(self, writes: Writes | None) -> Call | None:
        """The ``finish.lua`` call for ``writes`` (then emptied)."""
        if writes is None or not writes.finishing:
            return None
        values: dict[str, Any] = {}
        if writes.history:
            values['history'] = [list(h) for h in writes.history]
        if writes.disables:
            values['disable'] = [list(d) for d in writes.disables]
        if writes.deletes:
            values['delete'] = [list(d) for d in writes.deletes]
        writes.history.clear()
        writes.disables.clear()
        writes.deletes.clear()
        text = json.dumps(values, ensure_ascii=False, separators=(',', ':'))
        args = (self.keys.changes, self.keys.prefix, text)
        return Call(self._finish, (self.keys.schedule,), args)

    def _notes(self, writes: Writes | None) -> list[tuple[Any, ...]]:
        """The heartbeat and event commands of ``writes`` (then emptied): plain writes to
        keys of redbeat's own, queued in a pipeline beat sends anyway."""
        if writes is None or (writes.heartbeat is None and not writes.events and not writes.sent):
            return []
        notes: list[tuple[Any, ...]] = []
        if writes.sent:  # confirmed in the broker: no longer to be re-sent by a next leader
            notes.append(('HDEL', self.keys.journal, *writes.sent))
        if writes.heartbeat is not None:
            # Expires so a schedule no beat runs any more leaves nothing behind.
            notes.append(('SET', self.keys.heartbeat, writes.heartbeat, 'EX', HEARTBEAT_TTL))
        for event in writes.events:
            fields = [part for item in event.items() for part in item]
            cap = ('MAXLEN', '~', writes.events_maxlen)
            notes.append(('XADD', self.keys.events, *cap, '*', *fields))
        writes.heartbeat = None
        writes.events.clear()
        writes.sent.clear()
        return notes

    def census(self) -> tuple[int, int]:
        """How many entries are in the schedule, and how many of them are enabled (score >= 0)."""
        with self.client.pipeline(transaction=False) as pipe:
            pipe.zcard(self.keys.schedule)
            pipe.zcount(self.keys.schedule, 0, '+inf')  # disabled and finished ones: -1
            total, enabled = pipe.execute()
        return int(total), int(enabled)

    def events(self, count: int) -> list[tuple[str, dict[str, str]]]:
        """The latest ``count`` events of the events stream, newest first: (id, fields)."""
        found: Any = self.client.xrevrange(self.keys.events, count=count)
        return [(str(id_), {str(k): str(v) for k, v in fields.items()}) for id_, fields in found]

    def history(self, name: str, limit: int = 100) -> list[str]:
        """An entry's latest dispatch records (JSON), newest first."""
        return [str(r) for r in self.client.lrange(self.keys.history(name), 0, limit - 1)]  # type: ignore[union-attr, unused-ignore]

    def _due_rows(self, reply: Any) -> list[Due]:
        if isinstance(reply, Exception):
            raise reply
        out = []
        for i in range(0, len(reply), 6):
            member_bytes, score, definition, meta, policy, error = reply[i : i + 6]
            # A member that is not UTF-8 keeps its bytes (surrogate escapes): the
            # entry is reported and parked under the exact member, never sent.
            member = member_bytes.decode('utf-8', 'surrogateescape')
            key = self.keys.key_of(member)
            if error is not None:
                row = _row(key, redis.ResponseError(error.decode('utf-8', 'replace')))
            elif not member.isascii() and _escaped(member):
                row = Row(key, error='the schedule member is not valid UTF-8')
            else:
                row = _row(key, (definition, meta, policy))
            out.append(Due(member, score.decode(), row))
        return out

    def _peek(self, pipe: Any, after: float) -> None:
        # Raw: the first member may be one whose bytes are not UTF-8 (only its score is read).
        _raw(
            pipe, 'ZRANGEBYSCORE', self.keys.schedule, f'({after!r}', '+inf', 'WITHSCORES',
            'LIMIT', 0, 1,
        )  # fmt: skip

    def prune_members(self, members: Sequence[str]) -> int:
        """Remove members whose hash does not exist (atomically); returns how many."""
        if not members:
            return 0
        keys = [self.keys.schedule, *(self.keys.key_of(m) for m in members)]
        return int(self._call(self._prune, keys, list(members)))

    def rollback(self, restores: Sequence[Restore]) -> int:
        """Undo claims whose publish failed; returns how many were restored."""
        if not restores:
            return 0
        args: list[Any] = []
        for r in restores:
            journal = json.dumps(list(r.journal)) if r.journal else ''
            args += [_score_text(r.claimed), _score_text(r.score), r.meta or '', journal]
        keys = [self.keys.schedule, self.keys.journal, *(r.key for r in restores)]
        return int(self._call(self._rollback, keys, args))

    # --- the journal (at-least-once delivery) ---

    def journal(self) -> dict[str, str]:
        """Occurrences claimed but not confirmed sent: task id -> record JSON.

        One HGETALL: the journal holds at most the groups in flight when
        leaders died (confirmed sends leave it with the next round trip).
        """
        return {str(k): str(v) for k, v in self.client.hgetall(self.keys.journal).items()}  # type: ignore[union-attr, unused-ignore]

    def forget_journal(self, task_ids: Sequence[str]) -> None:
        """Drop journal records (their occurrences were sent, or can never be)."""
        if task_ids:
            self.client.hdel(self.keys.journal, *task_ids)

    # --- management reads (redbeat.api): listing and inspection ---

    def scan_schedule(self, count: int = 1000) -> Iterator[list[tuple[str, str]]]:
        """Batches of ``(member, exact score)`` from the sorted set (ZSCAN: one round trip a batch).

        ZSCAN, unlike paging by rank, neither skips nor stops early while beat
        moves scores; a member may come twice, so callers de-duplicate.
        """
        cursor = 0
        while True:
            # Raw member names: one that is not UTF-8 is left out (see _name), not a crash.
            cursor, found = _raw(
                self.client, 'ZSCAN', self.keys.schedule, cursor, 'COUNT', count,
                score_cast_func=_exact,
            )  # fmt: skip
            if found:
                named = [(_name(member), str(score)) for member, score in found]
                yield [(member, score) for member, score in named if member is not None]
            if cursor == 0:
                return

    def inspect(self, keys: Sequence[str]) -> list[Inspected]:
        """Each key's fields (counters too) and whether it exists, in one pipeline.

        Tells a missing hash from a hash without a ``definition`` field, which
        HMGET alone cannot.
        """
        if not keys:
            return []
        with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                _hmget(pipe, key, _INFO_FIELDS)
                pipe.exists(key)
            replies = pipe.execute(raise_on_error=False)
        return [_inspected(key, reply, exists) for key, reply, exists
                in zip(keys, replies[::2], replies[1::2])]  # fmt: skip

    def entry(
        self, name: str, history: int | None
    ) -> tuple[Inspected, float | None, list[str] | None]:
        """One entry as :meth:`inspect` reads it, its score (under either member
        form: key or bare name) and its latest ``history`` dispatch records (None:
        not read), in one round trip."""
        key = self.keys.entry(name)
        with self.client.pipeline(transaction=False) as pipe:
            _hmget(pipe, key, _INFO_FIELDS)
            pipe.exists(key)
            pipe.zmscore(self.keys.schedule, [key, name])
            if history is not None and history > 0:
                pipe.lrange(self.keys.history(name), 0, history - 1)
            replies = pipe.execute(raise_on_error=False)
        fields, exists, scores = replies[:3]
        if isinstance(scores, Exception):
            raise scores
        records: list[str] | None = None
        if history is not None:
            records = [] if len(replies) < 4 else [str(r) for r in _ok(replies[3])]
        full, bare = scores
        return _inspected(key, fields, exists), full if full is not None else bare, records

    def unscheduled(self, wanted: Callable[[str], bool], count: int = 1000) -> Iterator[list[str]]:
        """Batches of the entry hashes ``wanted`` (given each key) that are not in
        the sorted set under either member form (SCAN, then ZMSCORE per batch)."""
        for batch in self.scan_entry_keys(count):
            batch = [k for k in batch if wanted(k)]
            found = self.scores([*batch, *(self.keys.name_of(k) for k in batch)])
            missing = [
                k
                for k, full, bare in zip(batch, found, found[len(batch) :])
                if full is None and bare is None
            ]
            if missing:
                yield missing

    def overview(
        self,
        lock_key: str | None,
        now: float,
        overdue_before: float,
        upcoming: int,
        memory: bool = False,
    ) -> Status:
        """Counts, the first ``upcoming`` due times and the lock, in one round trip;
        with ``memory``, the eviction settings too (two more on Redis Cluster,
        whose pipelines route by key: CONFIG has none)."""
        config = memory and not self.cluster
        with self.client.pipeline(transaction=False) as pipe:
            pipe.zcard(self.keys.schedule)
            pipe.zcount(self.keys.schedule, 0, now)
            pipe.zcount(self.keys.schedule, '(0', overdue_before)  # 0: just marked due
            _raw(
                pipe, 'ZRANGEBYSCORE', self.keys.schedule, 0, '+inf', 'WITHSCORES', 'LIMIT', 0,
                upcoming,
            )  # fmt: skip
            pipe.get(self.keys.heartbeat)
            if lock_key:
                pipe.get(lock_key)
                pipe.pttl(lock_key)
            if config:
                pipe.config_get('maxmemory-policy')
                pipe.config_get('maxmemory')
            replies = pipe.execute(raise_on_error=False)
        settings: tuple[str | None, str | None]
        if config:
            policy, maxmemory = replies[-2:]
            del replies[-2:]
            settings = (
                _config_value(policy, 'maxmemory-policy'),
                _config_value(maxmemory, 'maxmemory'),
            )
        elif memory:
            settings = (self.config_get('maxmemory-policy'), self.config_get('maxmemory'))
        else:
            settings = (None, None)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        total, due, overdue, first, heartbeat = replies[:5]
        holder, ttl = replies[5:] if lock_key else (None, None)
        return Status(
            entries=int(total),
            due=int(due),
            overdue=int(overdue),
            upcoming=[
                (member.decode('utf-8', 'backslashreplace'), float(score))
                for member, score in _pairs(first)
            ],
            lock_holder=None if holder is None else str(holder),
            lock_ttl=ttl / 1000 if isinstance(ttl, int) and ttl > 0 else None,
            heartbeat=None if heartbeat is None else str(heartbeat),
            maxmemory_policy=settings[0],
            maxmemory=settings[1],
        )


def memory_settings(client: Any) -> list[tuple[str | None, str | None]]:
    """``(maxmemory-policy, maxmemory)`` of the server, or of each node of a cluster.

    ``(None, None)`` when the server refuses CONFIG (managed services often do).
    """
    try:
        reply = client.config_get('maxmemory*')
    except redis.ResponseError:
        return [(None, None)]
    if isinstance(reply, dict) and reply and all(isinstance(v, dict) for v in reply.values()):
        nodes = [reply[node] for node in sorted(reply)]  # a cluster client: a reply per node
    else:
        nodes = [reply]
    return [(_config_value(n, 'maxmemory-policy'), _config_value(n, 'maxmemory')) for n in nodes]


def _config_value(reply: Any, name: str) -> str | None:
    """A CONFIG GET reply's value; None when the server refused (or lacks the setting)."""
    if isinstance(reply, redis.ResponseError):
        return None
    if isinstance(reply, Exception):
        raise reply
    value = reply.get(name)
    return None if value is None else str(value)


def _queue_notes(pipe: Any, notes: Sequence[tuple[Any, ...]]) -> None:
    for note in notes:
        pipe.execute_command(*note)


def _noted(replies: list[Any], count: int) -> None:
    """Take the replies of ``count`` heartbeat and event writes off the front of
    ``replies``; report a failed one (the tick goes on: it is only a note)."""
    for reply in replies[:count]:
        if isinstance(reply, Exception):
            logger.warning('beat: Could not write the heartbeat or an event: %s', reply)
    del replies[:count]


def _finished(reply: Any) -> None:
    """Report a failed ``finish.lua`` call: bookkeeping lost, the tick goes on."""
    if isinstance(reply, Exception):
        logger.warning('beat: Could not write dispatch records and finish actions: %s', reply)
    elif isinstance(reply, list) and len(reply) > 4 and int(reply[3]):
        # Each record is written on its own (pcall), so one refusal (an ACL user
        # without LPUSH/LTRIM, a key of the wrong type) costs records, not the tick.
        logger.warning(
            'beat: Could not write %d dispatch record(s) (history): %s', int(reply[3]), reply[4]
        )


def _orphans_page(reply: Any) -> tuple[int, list[str]]:
    if isinstance(reply, Exception):
        raise reply
    return int(reply[0]), _names(reply[1:])


def _names(keys: Iterable[bytes | str]) -> list[str]:
    """Key names read as bytes, but those that are not UTF-8 (see :func:`_name`)."""
    return [name for name in map(_name, keys) if name is not None]


def _name(key: bytes | str) -> str | None:
    """A key name read as bytes; None if it is not UTF-8: it cannot be an entry anyone
    wrote by name (redbeat's own writes are UTF-8), so it is left alone."""
    if isinstance(key, str):
        return key
    try:
        return key.decode('utf-8')
    except UnicodeDecodeError:
        return None


def _save_values(items: Sequence[SaveItem]) -> str:
    """``save.lua``'s ARGV[5]: the items' values but their definitions, by field."""
    texts = {'': 1}  # each distinct meta or policy once, by its index as Lua counts
    ref = texts.setdefault
    values: dict[str, Any] = {
        'name': [item.name for item in items],
        'score': [item.score for item in items],  # a float goes as JSON, as exact as repr()
        'keep': ''.join(['1' if item.keep_score else '0' for item in items]),
        'expected': [ref(item.expected_meta or '', len(texts) + 1) for item in items],
        'meta': [ref(item.new_meta or '', len(texts) + 1) for item in items],
        'policy': [ref(item.policy or '', len(texts) + 1) for item in items],
    }
    if any(item.read is not None for item in items):
        values['read'] = [0 if item.read is None else ref(item.read[0], len(texts) + 1)
                          for item in items]  # fmt: skip
        values['read_policy'] = [
            ref('' if item.read is None else item.read[1] or '', len(texts) + 1) for item in items
        ]
    values['texts'] = list(texts)
    return json.dumps(values, ensure_ascii=False, separators=(',', ':'))


#: :meth:`ScheduleStore.save` flags, per item.
WRITTEN, STALE_META, WRONG_TYPE, CHANGED, GONE = 1, 0, -1, 2, 3
_FLAGS = {'1': WRITTEN, '0': STALE_META, '-': WRONG_TYPE, 'c': CHANGED, 'x': GONE}


def _not_saved(replies: Sequence[Any]) -> set[str]:
    """Static names recorded before that none of the ``save.lua`` calls (raw) saved."""
    return set.intersection(*({bytes(n).decode() for n in reply[2:]} for reply in replies))


def _members(reply: Any) -> set[str]:
    if isinstance(reply, Exception):
        raise reply
    return {str(name) for name in reply}


def _pairs(reply: Sequence[Any]) -> list[tuple[Any, Any]]:
    """``(member, score)`` pairs of a raw WITHSCORES reply (RESP3: pairs; RESP2: flat)."""
    if reply and isinstance(reply[0], list):
        return [(member, score) for member, score in reply]
    return list(zip(reply[::2], reply[1::2]))


def _first_score(reply: Any) -> float | None:
    if isinstance(reply, Exception):
        raise reply
    if not reply:
        return None
    first = reply[0]  # RESP3: [member, score] pairs; RESP2: member, score
    return float(first[1] if isinstance(first, list) else reply[1])


def _row(key: str, reply: Any) -> Row:
    """The row of ``key`` from its HMGET reply (bytes); each field decoded on its own."""
    if isinstance(reply, Exception):
        reason = str(reply)
        if reason.startswith('WRONGTYPE'):
            reason = 'key holds a value of the wrong type (a hash is expected)'
        return Row(key, error=reason)
    try:
        definition = _text('definition', reply[0])  # one by one: made for every due entry
        meta, policy = _text('meta', reply[1]), _text('policy', reply[2])
    except InvalidValue as exc:
        return Row(key, error=str(exc))
    return Row(key, definition, meta, policy=policy)


def _ok(reply: Any) -> Any:
    if isinstance(reply, Exception):
        raise reply
    return reply


def _counter(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _inspected(key: str, reply: Any, exists: Any) -> Inspected:
    """An :meth:`ScheduleStore.inspect` result from the HMGET and EXISTS replies."""
    if isinstance(reply, Exception):
        return Inspected(_row(key, reply), exists == 1)
    row = _row(key, reply[:3])
    return Inspected(row, exists == 1, _counter(reply[3]), _counter(reply[4]))


def _hmget(pipe: Any, key: str, fields: Sequence[str] = _FIELDS) -> None:
    """Queue the read of an entry's fields, their values left as bytes (see :func:`_row`)."""
    _raw(pipe, 'HMGET', key, *fields)


def _raw(target: Any, *args: Any, **options: Any) -> Any:
    """Run (or queue, on a pipeline) a command whose reply is left as bytes."""
    return target.execute_command(*args, **options, **_RAW)


def _text(field: str, raw: bytes | str | None) -> str | None:
    """A stored field as text: within the size limit and valid UTF-8 (InvalidValue if not)."""
    if raw is None or isinstance(raw, str):
        return raw
    check_size(field, len(raw))
    try:
        return raw.decode('utf-8')
    except UnicodeDecodeError as exc:
        raise InvalidValue(
            f'{field} is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})'
        ) from None


def _escaped(text: str) -> bool:
    """``text`` holds bytes that were not UTF-8 (decoded with surrogate escapes)."""
    try:
        text.encode('utf-8')
    except UnicodeEncodeError:
        return True
    return False


def _wire(text: str) -> bytes | str:
    """``text`` as sent to Redis: the original bytes of a surrogate-escaped member."""
    return text if text.isascii() else text.encode('utf-8', 'surrogateescape')
