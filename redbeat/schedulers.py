"""The Celery beat scheduler: :class:`RedBeatScheduler`.

One tick, on the beat that holds the lock:

1. read the members due now (score 0..now) from the sorted set;
2. in chunks (a small first one, so the first message leaves at once):
   fetch their definitions and meta (one pipeline), decode them (cached by
   definition text), compute each next due time (pure, ``timing``);
3. claim the chunk (one script, fenced by the lock token): each entry's
   score moves from the value read to its next due time, with its new run
   state; an entry changed meanwhile is not claimed;
4. send the claimed ones; roll back the claim of any that failed to send,
   so the occurrence is retried rather than lost.

Whatever decoding or planning one entry raises, that entry alone is parked:
logged with its key and the reason, and looked at again after
``beat_max_loop_interval``; its data is never changed and the rest of its
chunk runs on time.  Redis errors, and redbeat's own keys holding the wrong
type of value, are logged and retried with backoff; beat goes on.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import Any

import redis
from celery import Celery
from celery.beat import Scheduler, SchedulingError
from celery.schedules import crontab
from celery.utils.time import humanize_seconds
from redis.exceptions import ClusterDownError, NoScriptError, RedisClusterException

from . import checks, timing
from .client import cluster_unreachable, needs_operator
from .codec import decode_definition, decode_meta
from .compat import (
    RetryingConnection,
    acquire_distributed_beat_lock,
    ensure_conf,
    expose_conf,
    get_redis,
)
from .config import RedBeatConfig
from .entry import (
    RedBeatSchedulerEntry,
    StoreContext,
    check_entry,
    save_entries,
    save_items,
    settle_saves,
)
from .errors import DefinitionError, LeadershipLost
from .leader import Leadership
from .metrics import Observer, make_observer
from .planner import Plan, Planner, claim_groups, journaled, queue_finish, record
from .publish import Message, Outcome, Publisher, stop_signals_held
from .store import Claimed, Due, Row, ScheduleStore, Startup, Writes

logger = logging.getLogger('celery.beat')

#: Redis errors beat survives (logged, retried with backoff on the next tick).
REDIS_ERRORS = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.BusyLoadingError,
    redis.ReadOnlyError,
    NoScriptError,  # a script missing on a server that just became master (redis-py reloads once)
    ClusterDownError,  # Redis Cluster nodes restarting, before they agree the cluster is up
    RedisClusterException,  # only when no node answers: see _survivable
)
#: Bound on the chunks one tick handles (a tick never loops forever).
_MAX_CHUNKS_PER_TICK = 1000

#: A poll() of ``t`` seconds can return as late as ``t * _POLL_SLACK + _POLL_ROUNDING``
#: after it was due: Python rounds its timeout up to a whole millisecond, and
#: Linux lets a select()/poll() sleeper fire up to 0.1 % of its timeout late
#: (timer slack).  Waiting for a due instant 3.3 s away (the lock's renewal
#: period) beat woke 4-5 ms after it, every burst.
_POLL_SLACK = 0.001
_POLL_ROUNDING = 0.001


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector, paused while a tick dispatches.

    A large tick holds each chunk's rows, plans and messages until the chunk
    is sent, so they outlive young collections and are promoted; every few
    chunks that triggers a full collection, which walks every object beat
    holds (its caches: millions of objects at 400,000 entries).  Measured at
    400,000 entries due a minute: 90 full collections, 25 s in three minutes.
    Paused, the tick's objects are freed by reference counting as usual; the
    few cycles wait for the collector, which runs again once the tick is over.
    A collector the application disabled stays disabled.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def poll_for(left: float) -> float:
    """How long to wait on the changes channel when ``left`` seconds remain.

    As long as possible while even a poll that overshoots as much as it may
    still returns by the deadline; 0 when that is under a millisecond (the
    rest is slept instead: ``time.sleep`` overshoots by microseconds).
    """
    timeout = (left - _POLL_ROUNDING) / (1 + _POLL_SLACK)
    return timeout if timeout >= _POLL_ROUNDING else 0.0


class _Pace:
    """How long a chunk takes, per entry, from planning to its last message leaving."""

    def __init__(self, per_entry: float) -> None:
        self.per_entry = per_entry

    def measured(self, seconds: float, entries: int) -> None:
        if entries:
            self.per_entry = seconds / entries


def _survivable(exc: Exception) -> None:
    """Re-raise ``exc`` unless it is an outage: of REDIS_ERRORS, a RedisClusterException
    only when no cluster node answered (redis-py raises it when reading the slot map
    again fails); any other (a command no slot can serve) is a bug to report."""
    if isinstance(exc, RedisClusterException) and not cluster_unreachable(exc):
        raise exc


def _journal_message(text: str) -> Message:
    """The message a journal record stands for (ValueError/KeyError/TypeError if unreadable)."""
    stored = json.loads(text)
    key = str(stored['key'])
    occurrence = datetime.fromisoformat(stored['occurrence'])
    return Message(key, decode_definition(key, stored['definition']), occurrence)


def _shown(key: str) -> str:
    """A key fit for a log line (bytes that were not UTF-8 shown as escapes)."""
    return key.encode('utf-8', 'backslashreplace').decode('utf-8')


class RedBeatScheduler(Scheduler):  # type: ignore[misc]
    """Celery beat scheduler that keeps the schedule in Redis."""

    Entry = RedBeatSchedulerEntry

    #: Entries in the first chunk of a tick (small: the first message leaves fast).
    first_chunk = 100
    #: Entries per chunk after the first (bounds memory and lock renewal gaps).
    chunk_size = 10000
    #: Longest pause after consecutive Redis errors, in seconds.
    max_backoff = 30.0
    #: Pause after each of the first ``quick_retries`` Redis errors in a row,
    #: before the pause doubles: a Sentinel failover clears within a second or
    #: two, and a backoff doubling from the first error slept through its end
    #: (after two errors 1 s + 2 s: a 4.3 s stall with redis-py's own retries).
    first_backoff = 0.5
    quick_retries = 3
    #: Occurrences claimed together, then sent in one broker round trip (kombu's
    #: Producer.batch, where supported) before the next group is claimed: what
    #: a crash of the leader can lose at most (docs/high-availability.rst).
    publish_group = 20
    #: Wait on the changes channel so a saved entry is seen at once, not at the next poll.
    listen_for_changes = True
    #: Seconds from planning an entry to its message leaving, per entry of the chunk,
    #: assumed for a tick's first chunk (later chunks use what the earlier ones took).
    send_estimate = 0.0002
    #: Keys per SCAN page when looking for orphan hashes at start: one round trip,
    #: and about 50 ms of Redis time, a page.
    orphan_scan = 20_000
    #: Seconds between heartbeats (``redbeat health`` reads them): one SET in the
    #: tick's first round trip, so an idle tick is three commands but every fifth second.
    heartbeat_every = 5.0

    def __init__(
        self,
        app: Celery,
        lock_key: str | None = None,
        lock_timeout: float | None = None,
        clock: Callable[[], float] = time.time,
        **kwargs: Any,
    ) -> None:
        #: UNIX seconds now: every moment the scheduler plans with is read from it,
        #: so tests drive it (the leader lock's renewal and Redis' TTLs keep real time).
        self.clock = clock
        #: Sleeps the last moment before a due instant (tests move their clock on instead).
        self._sleep: Callable[[float], None] = time.sleep
        config = RedBeatConfig.from_app(app)
        if lock_key is not None:
            config = config.but(lock_key=lock_key)
        if lock_timeout is not None:
            config = config.but(lock_timeout=float(lock_timeout))
        self.context = StoreContext(config)
        expose_conf(app, config)  # app.redbeat_conf, which code written for 2.x reads
        self._ready = False
        self._failures = 0
        self._changes: redis.client.PubSub | None = None
        self._waiting = False
        self._statics_written = 0
        #: History records and finish actions, written with the next round trip.
        self._writes = Writes()
        #: What the last apply_async raised (see :meth:`apply_async`).
        self._hook_error: BaseException | None = None
        #: What the eviction check found at start (celery-redbeat 2.4.3's attribute).
        self.key_expiry_findings: list[str] = []
        self._heartbeat_at = 0.0
        self._tick_due = 0
        self.observer: Observer = make_observer(config, self._writes)
        self._replayed_term: int | None = None  # at-least-once: journal re-sent in this term
        self._ticking = False
        self._close_requested = False
        self._broker_warmed = False
        self.publisher = Publisher(app, lambda: self.producer, self.publish_group)
        super().__init__(app, **kwargs)

    @property
    def max_wait(self) -> float:
        """The longest beat sleeps between ticks (Celery's beat_max_loop_interval)."""
        return float(self.max_interval)

    @property
    def config(self) -> RedBeatConfig:
        return self.context.config

    @property
    def lock_key(self) -> str | None:
        """The leader lock's key; None when locking is disabled (celery-redbeat 2.x name)."""
        return self.config.lock_key

    @property
    def lock_timeout(self) -> float:
        """Seconds the lock outlives a dead leader (celery-redbeat 2.x name)."""
        return self.config.lock_timeout

    @property
    def store(self) -> ScheduleStore:
        """The schedule's store (its first use connects: see ``StoreContext.store``)."""
        return self.context.store

    @cached_property
    def leader(self) -> Leadership:
        return Leadership(
            self.store.client, self.config.lock_key, self.config.lock_timeout, self.observer
        )

    def _leader_if_made(self) -> Leadership | None:
        """The lock, unless Redis was never reached (then no lock can be held)."""
        leader: Leadership | None = vars(self).get('leader')
        return leader

    # --- start-up ----------------------------------------------------------

    def setup_schedule(self) -> None:
        self.observer.start()
        try:
            self._setup()
        except REDIS_ERRORS as exc:
            _survivable(exc)
            logger.log(
                logging.ERROR if needs_operator(exc) else logging.WARNING,
                'beat: Redis at %s unavailable at start (%s: %s); will keep trying with backoff.',
                self.config.masked_url,
                type(exc).__name__,
                exc,
            )
        except redis.ResponseError as exc:  # a key of the wrong type: tick() retries
            logger.error('beat: Could not start: %s; will keep trying.', self._refused(exc))

    def _setup(self) -> None:
        self._sync_statics()
        self._ready = True

    def _check_eviction(self, policy: str | None, maxmemory: str | None) -> None:
        """Log or raise as ``redbeat_key_expiry_check`` says (:mod:`redbeat.checks`)."""
        mode = self.config.key_expiry_check
        self.key_expiry_findings = checks.report(policy, maxmemory, mode)

    def _static_entries(self) -> dict[str, RedBeatSchedulerEntry]:
        wanted = dict(self.app.conf.beat_schedule or {})
        for name, spec in self._default_entries().items():
            wanted.setdefault(name, spec)
        entries = {}
        for name, spec in wanted.items():
            try:
                entry = self._maybe_entry(name, spec)
                check_entry(entry)
            except Exception as exc:
                logger.error(
                    'beat: beat_schedule entry %r is invalid and was skipped: %s', name, exc
                )
                continue
            entries[name] = entry
        return entries

    def _default_entries(self) -> dict[str, Any]:
        """Celery's own periodic task, as its schedulers install it."""
        if self.app.conf.result_expires and not self.app.backend.supports_autoexpire:
            cleanup = {
                'task': 'celery.backend_cleanup',
                'schedule': crontab('0', '4', '*'),
                'options': {'expires': 12 * 3600},
            }
            return {'celery.backend_cleanup': cleanup}
        return {}

    def _sync_statics(self) -> None:
        """Write beat_schedule to Redis; delete entries removed from it since last start.

        One round trip (:meth:`ScheduleStore.startup`) also reads the eviction
        settings and looks for orphan hashes; more only when statics changed
        or were removed, orphans were found, or the database holds more keys
        than one SCAN page.
        """
        entries = self._static_entries()
        names = set(self.app.conf.beat_schedule or {}) | set(entries)
        listed = list(entries.values())
        now = self._now()
        try:
            items = save_items(self.context, listed, now)
        except DefinitionError:  # one cannot be stored (NaN in its args, say): leave it out
            listed = [e for e in listed if self._storable(e, now)]
            items = save_items(self.context, listed, now)
        started = self.store.startup(items, self.orphan_scan)
        self._check_eviction(started.maxmemory_policy, started.maxmemory)
        settle_saves(self.context, listed, started.flags, now, stale=started.stale)
        removed = started.statics - names
        if removed:
            logger.info(
                'beat: Removing entries no longer in beat_schedule: %s', ', '.join(sorted(removed))
            )
            self.store.delete(removed)
            self.store.forget_statics(removed)
        self._statics_written = len(entries)
        self._adopt_orphans(started)

    def _storable(self, entry: RedBeatSchedulerEntry, now: datetime) -> bool:
        try:
            save_items(self.context, [entry], now)
        except DefinitionError as exc:
            logger.error(
                'beat: beat_schedule entry %r is invalid and was skipped: %s', entry.name, exc
            )
            return False
        return True

    def _adopt_orphans(self, started: Startup) -> None:
        """Schedule hashes written without a ZADD (the RedBeat README promises it)."""
        if started.cursor is None:  # Redis Cluster: the client scans each node
            for orphans in self.store.unscheduled(lambda _key: True, count=10_000):
                self._adopt(orphans)
            return
        self._adopt(started.orphans)
        cursor = started.cursor
        while cursor:
            cursor, orphans = self.store.orphans(cursor, self.orphan_scan)
            self._adopt(orphans)

    def _adopt(self, orphans: Sequence[str]) -> None:
        scores: dict[str, float] = {}
        for row in self.store.fetch(orphans):
            try:
                scores[row.key] = self._initial_score(row)
            except DefinitionError as exc:
                logger.error(
                    'beat: Entry %s cannot be scheduled and was skipped: %s', row.key, exc.reason
                )
        if self.store.add_missing(scores):
            logger.info('beat: Scheduled %d entries found without a schedule member.', len(scores))

    def _initial_score(self, row: Row) -> float:
        if row.error:
            raise DefinitionError(row.key, row.error)
        fields = decode_definition(row.key, row.definition)
        last_run_at, _ = decode_meta(row.key, row.meta)
        policy = self.planner.policy(row)
        if last_run_at is None and fields['enabled']:
            return timing.NOW  # a hash written by hand, never run: due at once
        now = self._now()  # not read: a run state is given
        return timing.score_after_change(
            row.key, fields['schedule'], fields['enabled'], last_run_at, now, self.context.tz,
            policy,
        )  # fmt: skip

    # --- compat API: adding entries through a scheduler object --------------

    def update_from_dict(self, dict_: dict[str, Any]) -> None:
        """Save entries given as ``beat_schedule`` items to Redis."""
        entries = []
        for name, spec in dict_.items():
            try:
                entries.append(self._maybe_entry(name, spec))
            except Exception as exc:
                logger.error('beat: Entry %r is invalid and was skipped: %s', name, exc)
        save_entries(entries)

    def add(self, **kwargs: Any) -> RedBeatSchedulerEntry:
        """Save one entry (``name``, ``task``, ``schedule``, ...), as redisbeat's ``add``."""
        entry = self.Entry(app=self.app, **kwargs)
        entry.save()
        return entry

    def remove(self, name: str) -> bool:
        """Delete one entry by name; True if it existed."""
        return self.store.delete([name]) > 0

    # --- the beat loop -----------------------------------------------------

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """Send what is due; return how long beat may sleep before the next tick."""
        self._ticking = True
        try:
            return self._tick()
        finally:
            self._ticking = False
            if self._close_requested:
                # close() was asked for during the tick (Celery's SIGTERM handler
                # then raises SystemExit): stop beat even if a library on the way
                # caught that SystemExit; Celery's loop then closes us for good.
                self._close_requested = False
                raise SystemExit()

    def _tick(self) -> float:
        try:
            if not self._ready:
                self._setup()
            if not self.leader.ensure():
                self._flush_events()
                return min(1.0, self.leader.renew_every, self.max_wait)
            self._tick_started()
            if self.config.delivery == 'at-least-once' and self._replayed_term != self.leader.term:
                self._replay_journal()
            with collector_paused():
                following = self._dispatch_due()
            self._tick_finished()
            self._warm_broker(following)
        except LeadershipLost as exc:
            self.leader.lost(str(exc))
            return min(1.0, self.max_wait)
        except REDIS_ERRORS as exc:
            _survivable(exc)
            self.observer.redis_error(exc)
            delay = self._back_off()
            logger.log(
                logging.ERROR if needs_operator(exc) else logging.WARNING,
                'beat: Redis error at %s (%s: %s); retrying in %.1fs.',
                self.config.masked_url,
                type(exc).__name__,
                exc,
                delay,
            )
            return delay
        except redis.ResponseError as exc:  # Redis refused a command: wrong key type, ACL, OOM
            reason = self._refused(exc)
            delay = self._back_off()
            logger.error('beat: Cannot dispatch: %s; retrying in %.1fs.', reason, delay)
            return delay
        if self._failures:
            logger.warning('beat: Redis is reachable again after %d failed ticks.', self._failures)
            self._failures = 0
        return self._wait(following)

    def _tick_started(self) -> None:
        """Queue the heartbeat (``redbeat health``) for the tick's first round trip.

        At most every ``heartbeat_every`` seconds: a health check's threshold is
        a minute or more.
        """
        self.observer.tick_started()
        self._tick_due = 0
        now = self.clock()
        if now - self._heartbeat_at >= self.heartbeat_every:
            self._heartbeat_at = now
            self._writes.heartbeat = json.dumps({'at': now, 'beat': self.leader.token})

    def _tick_finished(self) -> None:
        self.observer.tick_finished(self._tick_due)
        now = self.clock()
        if self.observer.census_due(now):
            total, enabled = self.store.census()
            self.observer.census(total, enabled, now)

    def _warm_broker(self, following: float | None) -> None:
        """Connect to the broker while idle, before the first due send.

        Celery's beat connects at its first send: the kombu transport's import
        and the connection then delay the first burst by about 10 ms.  One try,
        no retries: a broker down now is left to the send, which retries as
        Celery's beat does (waiting here would hold up the lock's renewal).
        """
        if self._broker_warmed or following is None or 'producer' in self.__dict__:
            return
        self._broker_warmed = True
        try:
            self.connection.ensure_connection(max_retries=0)
            self.producer  # noqa: B018 - Celery's cached producer, on the live connection
        except Exception as exc:  # any failure is the send's to report
            logger.debug('beat: Not connected to the broker ahead of the first send (%s).', exc)

    def _flush_events(self) -> None:
        """Write events queued while leading (leadership lost) now: a standby has no
        due round trip to carry them."""
        if self._writes.events:
            self.store.write(self._writes)

    def _back_off(self) -> float:
        """Count a failed tick; the pause before the next (doubling, capped)."""
        self._failures += 1
        if (leader := self._leader_if_made()) is not None:
            leader.expire_if_stale()
        doublings = min(max(0, self._failures - self.quick_retries), 10)
        return min(self.max_backoff, self.first_backoff * 2.0**doublings)

    def _refused(self, exc: redis.ResponseError) -> str:
        """What a Redis refusal means, naming redbeat's key of the wrong type if that is it."""
        if 'WRONGTYPE' not in str(exc):
            return f'Redis refused a command ({exc})'
        try:
            wrong = self.store.wrong_types(self.config.lock_key)
        except (*REDIS_ERRORS, redis.ResponseError):
            wrong = []
        if not wrong:
            return f'a key holds the wrong type of value ({exc})'
        return '; '.join(
            f'key {key} holds a {found}, not a {wanted} (beat cannot run until it is '
            f'deleted or fixed: redis-cli TYPE {key})'
            for key, found, wanted in wrong
        )

    def _wait(self, following: float | None) -> float:
        """Sleep until ``following`` (capped), waking early when an entry changes.

        With a change subscription the wait happens here and 0 is returned, so
        beat ticks again at once; without one, beat's own loop sleeps.
        """
        wait = self.max_wait if following is None else max(0.0, following - self.clock())
        if self.leader.fence is not None:
            wait = min(wait, self.leader.renew_every)
        wait = min(wait, self.max_wait)
        if wait <= 0 or not self.listen_for_changes:
            return wait
        try:
            if self._changes is None:
                self._changes = self.store.listen()
            # Due instants are on the scheduler's clock; the monotonic bound keeps
            # a wall clock stepped back from stretching the wait.
            deadline, due_at = time.monotonic() + wait, self.clock() + wait
            self._waiting = True
            try:
                while (left := min(deadline - time.monotonic(), due_at - self.clock())) > 0:
                    timeout = poll_for(left)
                    if timeout <= 0:
                        self._sleep(left)  # the last moment: a poll would overshoot it
                        break
                    if self._changes.get_message(timeout=timeout) is not None:
                        logger.debug('beat: Woken up by a change to the schedule.')
                        break
            finally:
                self._waiting = False
        except REDIS_ERRORS as exc:
            logger.warning('beat: Lost the change subscription (%s); polling instead.', exc)
            self._changes = None
            return wait
        return 0.0

    def _dispatch_due(self) -> float | None:
        """Claim and send everything due now; returns the next due score.

        Round trips: one to load the first (small) chunk and peek, one to
        claim it, so its messages leave at once; then one per further chunk,
        each claiming the previous chunk and loading the next.  10k due
        entries: 4 round trips.
        """
        now_ts = self.clock()
        due, following = self.store.due(now_ts, self.first_chunk, peek=True, writes=self._writes)
        if not due:
            return following if following is not None else self._after_empty(now_ts)
        pace = _Pace(self.send_estimate)
        claimed = self._claim_and_send(due, pace, then_due=None)
        if claimed is None:
            return now_ts + 1.0
        following = claimed.next_due  # peeked after the claims: includes their new scores
        more = len(due) >= self.first_chunk
        if more:
            due, _ = self.store.due(now_ts, self.chunk_size)
        for _ in range(_MAX_CHUNKS_PER_TICK):
            if not more or not due:
                break
            more = len(due) >= self.chunk_size
            claimed = self._claim_and_send(
                due, pace, then_due=(now_ts, self.chunk_size) if more else None
            )
            if claimed is None:
                return now_ts + 1.0
            due, following = claimed.due, claimed.next_due
        return following

    def _after_empty(self, now_ts: float) -> float | None:
        """Nothing is due now or later: if Redis lost the schedule, write it again.

        An empty sorted set while ``beat_schedule`` has entries means Redis
        restarted without its data (or was flushed); the static entries are
        written again rather than silently never sent.
        """
        if self._statics_written and self.store.count() == 0:
            logger.warning('beat: The schedule in Redis is empty; writing beat_schedule again.')
            self._setup()
            return now_ts
        return None

    def _claim_and_send(
        self, due: Sequence[Due], pace: _Pace, then_due: tuple[float, int] | None
    ) -> Claimed | None:
        """Claim one chunk and send it, ``publish_group`` occurrences at a time.

        Each group is claimed only once the previous one is in the broker, so
        a crash loses at most one group.  The last group's claim loads the
        next chunk in the same round trip.  None when the broker did not take
        everything: the rest was handed back.

        The chunk is planned at the time it is planned, not at the tick's
        start, and with the time its messages will leave (estimated from the
        chunks before it): a run sent late in a long tick counts as late, and
        its next run is not bunched with it.  The lock is kept (renewed as its
        timeout requires) while planning, before each claim and between
        publish groups, however long each takes.
        """
        self._keep_lock()
        started = self.clock()
        now = datetime.fromtimestamp(started, tz=timezone.utc)
        send_at = now + timedelta(seconds=pace.per_entry * len(due))
        plans = []
        for d in due:
            self._keep_lock()
            plans.append(self._plan(d.member, d.score, d.row, now, send_at))
        self._tick_due += len(plans)
        if self.config.delivery == 'at-least-once':
            plans = [journaled(plan, d.row) for plan, d in zip(plans, due)]
        groups = list(claim_groups(plans, self.publish_group))
        claimed: Claimed | None = None
        for i, group in enumerate(groups):
            last = i == len(groups) - 1
            self._keep_lock()
            # A stop (SIGTERM, SIGINT) is taken once this group is in the broker
            # or handed back: raised between its claim and its publish, it would
            # lose the group (claimed, so no other beat sends it).
            with stop_signals_held():
                claimed = self._claim_group(group, then_due if last else None, now, last)
                ready = [p for p, ok in zip(group, claimed.flags) if ok]
                if self.observer.active:
                    self.observer.claimed(ready)
                for plan in ready:
                    if plan.finish and not plan.messages:  # finished without a send
                        self._queue_finish(plan)  # (max_runs lowered)
                sent = self._send([p for p in ready if p.messages])
            if not sent:
                return None
        pace.measured(self.clock() - started, len(due))
        return claimed

    def _claim_group(
        self,
        group: Sequence[Plan],
        then_due: tuple[float, int] | None,
        now: datetime,
        last: bool,
    ) -> Claimed:
        try:
            return self.store.claim(
                [p.claim for p in group],
                self.config.lock_key,
                self.leader.fence,
                then_due=then_due,
                peek_after=now.timestamp() if last else None,
                writes=self._writes,
            )
        except (KeyboardInterrupt, SystemExit):
            # Stopped during the claim's round trip (signals could not be held:
            # not the main thread): it may have been made.  Hand it back (a
            # no-op where it was not), so a stop loses nothing.
            self.store.rollback([p.restore for p in group if p.messages])
            raise

    def _keep_lock(self) -> None:
        """Renew the lock if a third of its timeout has passed; raise if it was lost.

        Cheap when no renewal is due (a clock read), so long loops call it per item.
        """
        if not self.leader.ensure():
            raise LeadershipLost(self.config.lock_key or '')

    def _send(self, plans: Sequence[Plan]) -> bool:
        """Send claimed occurrences; hand back the claims of those the broker did not take.

        A claim is the commit point: once claimed an occurrence is sent even
        if the lock is lost meanwhile, since no other beat can claim it.  A
        batch whose delivery is unknown is sent again only in at-least-once
        mode, from the journal (by default an occurrence is never sent
        twice).  Returns False when something was handed back or is to be
        sent again.
        """
        if not plans:
            return True
        messages = [m for p in plans for m in p.messages]
        owner = [p for p in plans for _ in p.messages]
        hooked = self._hooked_send if self.hooked() else None
        outcome = self.publisher.send(messages, between_groups=self._renew, send_one=hooked)
        self.observer.published(messages, outcome, self.clock())
        retry = outcome.retry
        if self.config.delivery == 'at-least-once':
            # Confirmed out of the journal; the uncertain stay in it and are
            # re-sent from it at the next tick, with their task ids.
            kept = set(retry) | set(outcome.uncertain)
            self._writes.sent.extend(messages[i].task_id for i in range(len(messages))
                                     if i not in kept)  # fmt: skip
            if outcome.uncertain:
                self._replayed_term = None
        elif outcome.uncertain:
            logger.error(
                'beat: %d occurrences may not have reached the broker; not sent again, so '
                'none is sent twice (redbeat_delivery = "at-least-once" would re-send them).',
                len(outcome.uncertain),
            )
        self._record(messages, owner, outcome)
        if retry:
            sent = {id(owner[i]) for i in range(len(messages)) if i not in outcome.failed}
            back = {id(owner[i]): owner[i] for i in retry if id(owner[i]) not in sent}
            restored = self.store.rollback([p.restore for p in back.values()])
            logger.warning(
                'beat: %d occurrences were not sent; %d handed back to be sent again.',
                len(retry),
                restored,
            )
        if outcome.interrupted is not None:
            raise outcome.interrupted
        if retry:
            return False
        return self._replayed_term is not None or self.config.delivery != 'at-least-once'

    def _replay_journal(self) -> None:
        """Re-send what earlier leaders claimed but did not confirm sent (same task ids).

        Once per term of leadership, before anything else is dispatched.
        Records that cannot be read are dropped with an error naming them;
        records the broker did not take stay for the next attempt.
        """
        records = self.store.journal()
        messages: list[Message] = []
        ids: list[str] = []
        dropped: list[str] = []
        for task_id, text in records.items():
            try:
                message = _journal_message(text)
            except (ValueError, KeyError, TypeError) as exc:
                logger.error('beat: Journal record %s of %s cannot be re-sent and was dropped: '
                             '%s', task_id, self.config.keys.journal, exc)  # fmt: skip
                dropped.append(task_id)
                continue
            messages.append(message)
            ids.append(task_id)
        outcome = self.publisher.send(messages, between_groups=self._renew)
        kept = set(outcome.retry) | set(outcome.uncertain)
        done = [task_id for i, task_id in enumerate(ids) if i not in kept]
        self.store.forget_journal(done + dropped)
        if outcome.interrupted is not None:
            raise outcome.interrupted
        if messages:
            logger.warning(
                'beat: Re-sent %d occurrences a previous leader claimed without confirming '
                'them sent (same task ids); %d left for the next attempt.',
                len(messages) - len(kept),
                len(kept),
            )
        if not kept:
            self._replayed_term = self.leader.term

    def _record(self, messages: Sequence[Message], owner: Sequence[Plan], outcome: Outcome) -> None:
        """Queue history records and finish actions for the next round trip."""
        sent_at = self._now()
        record(messages, owner, outcome, sent_at, self.config.keys, self._writes)

    def _queue_finish(self, plan: Plan) -> None:
        queue_finish(plan, self.config.keys, self._writes)

    def _renew(self) -> None:
        """Keep the lock during a long dispatch (a no-op until a renewal is due)."""
        try:
            self.leader.ensure()
        except REDIS_ERRORS as exc:
            logger.warning('beat: Could not renew the lock during dispatch: %s', exc)

    # --- Celery's per-entry methods (the hooked path) ------------------------
    #
    # Celery beat sends each due entry through maybe_due -> apply_entry ->
    # apply_async; instrumentation (Sentry Crons, tracers) and subclasses hook
    # those.  The tick claims and sends whole chunks instead, so it goes
    # through them only when one of them is overridden or wrapped (hooked()):
    # then each claimed occurrence is handed to maybe_due as an entry whose
    # options carry its deterministic task id.  The claim, the fencing and
    # the hand-back of what the broker refused stay the tick's.

    def hooked(self) -> bool:
        """True if a subclass or a patch replaced maybe_due, apply_entry or apply_async.

        Read on every send (three attribute look-ups), so a patch made after
        beat started takes effect at the next tick.  ``apply_entry`` counts
        only when replaced on this class or a subclass: a patch on Celery's
        ``Scheduler.apply_entry`` is for Celery's own schedulers (celery-redbeat
        2.x never called it either, and Sentry, which patches both it and
        ``RedBeatScheduler.apply_async``, would otherwise see each entry twice).
        """
        cls = type(self)
        return (
            cls.maybe_due is not _OWN_MAYBE_DUE
            or cls.apply_async is not _OWN_APPLY_ASYNC
            or cls.apply_entry is not Scheduler.apply_entry
        )

    def maybe_due(self, entry: RedBeatSchedulerEntry, producer: Any = None) -> float | None:
        """Send ``entry`` if it is due; seconds until it is next due (Celery's contract).

        Entries the tick hands here are claimed, so they are due.  Sent
        through ``apply_entry`` when a subclass overrides it, else straight
        through ``apply_async`` as celery-redbeat 2.x did.
        """
        is_due, next_time_to_run = entry.is_due()
        if is_due:
            if type(self).apply_entry is not Scheduler.apply_entry:
                self.apply_entry(entry, producer=producer)
            else:
                logger.info('Scheduler: Sending due task %s (%s)', entry.name, entry.task)
                self.apply_async(entry, producer=producer, advance=False)
        return next_time_to_run  # type: ignore[no-any-return]

    def reserve(self, entry: RedBeatSchedulerEntry) -> RedBeatSchedulerEntry:
        """Record a run of ``entry`` before it is sent (Celery's ``apply_async(advance=True)``).

        An occurrence the tick hands out is already claimed in Redis, so it is
        returned as it is; any other entry has its run recorded in Redis, as
        celery-redbeat 2.x did.
        """
        if entry.occurrence is not None:
            return entry
        following = entry.next()
        following.reschedule(following.last_run_at)
        return following

    def apply_async(
        self,
        entry: RedBeatSchedulerEntry,
        producer: Any = None,
        advance: bool = True,
        **kwargs: Any,
    ) -> Any:
        """Send ``entry`` through its task's ``apply_async``, as Celery's beat does.

        Celery's own method builds the message (options, ``headers`` plus
        ``celery_beat_task``); an error is raised as Celery's
        ``SchedulingError`` and also remembered, so the tick sorts it (broker
        down: hand back) even when an override of ``apply_entry`` swallowed it.
        """
        entry = self.reserve(entry) if advance else entry
        try:
            return super().apply_async(entry, producer=producer, advance=False, **kwargs)
        except Exception as exc:
            self._hook_error = exc.__context__ if isinstance(exc, SchedulingError) else exc
            raise

    def _hooked_send(self, message: Message, producer: Any) -> None:
        """Send one claimed occurrence through ``maybe_due`` (see :meth:`hooked`)."""
        fields = message.fields
        options = dict(fields['options'])
        if isinstance(options.get('headers'), dict):
            # Hooks add headers in place (Celery's beat, Sentry); the decoded
            # definition is cached and shared, so give them a copy.
            options['headers'] = dict(options['headers'])
        options['task_id'] = message.task_id
        entry = self.Entry(
            name=fields['name'],
            task=fields['task'],
            schedule=fields['schedule'],
            args=fields['args'],
            kwargs=fields['kwargs'],
            options=options,
            enabled=True,
            app=self.app,
            last_run_at=message.occurrence,
        )
        entry.occurrence = message.occurrence
        self._hook_error = None
        self.maybe_due(entry, producer=producer)
        error, self._hook_error = self._hook_error, None
        if error is not None:
            raise error

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), tz=timezone.utc)

    @cached_property
    def planner(self) -> Planner:
        """Plans the due rows this scheduler reads (pure; see :mod:`redbeat.planner`)."""
        return Planner(self.context.tz, self.context.defaults, park_for=self.max_wait)

    def _plan(
        self, member: str, score: str, row: Row, now: datetime, send_at: datetime | None = None
    ) -> Plan:
        """The planner's plan for one due member (``send_at``: when its messages are
        expected to leave); a parked entry is reported."""
        plan = self.planner.plan(member, score, row, now, send_at)
        if plan.problem is not None:
            logger.error(
                'beat: Entry %s skipped: %s. Its data is left as it is; looking again in %s.',
                _shown(row.key),
                plan.problem,
                humanize_seconds(self.max_wait),
            )
            self.observer.parked(row.key, plan.problem, self.max_wait)
        return plan

    # --- shutdown and banner -----------------------------------------------

    def close(self) -> None:
        if self._ticking:
            # Celery's SIGTERM handler calls close() and then raises SystemExit
            # wherever the tick is.  Closing connections under that tick would
            # turn the SystemExit into an I/O error (which kombu reports as a
            # failed batch, and beat goes on), and releasing the lock would let a
            # standby in before the claimed group is sent or handed back.  So
            # only note it: the tick unwinds (handing back what the broker does
            # not have), and Celery's loop calls close() again.
            self._close_requested = True
            return
        try:
            if self._writes:
                try:
                    self.store.write(self._writes)  # the last tick's history
                except REDIS_ERRORS as exc:
                    logger.warning('beat: Could not write the last dispatch records: %s', exc)
            if (leader := self._leader_if_made()) is not None:
                leader.release()
            # Celery's SIGTERM handler calls close() while the main thread may be
            # blocked reading the subscription: closing it under that read would
            # turn beat's SystemExit into a ValueError. The process is exiting.
            if self._changes is not None and not self._waiting:
                self._changes.close()
                self._changes = None
        finally:
            self.observer.close()
            super().close()

    @property
    def info(self) -> str:
        lines = [f'       . redis -> {self.config.masked_url}']
        if self.config.lock_key:
            timeout = self.config.lock_timeout
            lock = f'`{self.config.lock_key}` {humanize_seconds(timeout)} ({timeout:g}s)'
            lines.append(f'       . lock -> {lock}')
        else:
            lines.append('       . lock -> disabled (every beat dispatches)')
        lines.extend(f'       . WARNING -> {finding}' for finding in self.key_expiry_findings)
        return '\n'.join(lines)


__all__ = [
    'RedBeatConfig',
    'RedBeatScheduler',
    'RedBeatSchedulerEntry',
    'RedisBeatScheduler',
    'RetryingConnection',
    'acquire_distributed_beat_lock',
    'ensure_conf',
    'get_redis',
]

_OWN_MAYBE_DUE = RedBeatScheduler.maybe_due
_OWN_APPLY_ASYNC = RedBeatScheduler.apply_async

#: The name the RedBeat README uses (``celery beat -S redbeat.RedisBeatScheduler``).
RedisBeatScheduler = RedBeatScheduler
