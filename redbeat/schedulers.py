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

Entries that cannot be read are logged with their key and the reason, and
looked at again after ``beat_max_loop_interval``; their data is never
changed.  Redis errors are logged and retried with backoff; beat goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

import redis
from celery import Celery
from celery.beat import Scheduler
from celery.schedules import crontab
from celery.utils.time import humanize_seconds

from . import timing
from .config import RedBeatConfig
from .decoder import decode_definition, decode_meta, encode_meta
from .entry import Binding, RedBeatSchedulerEntry, check_entry, save_entries
from .errors import DefinitionError, LeadershipLost
from .leader import Leadership
from .store import Claim, Restore, Row

logger = logging.getLogger('celery.beat')

#: Redis errors beat survives (logged, retried with backoff on the next tick).
REDIS_ERRORS = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.BusyLoadingError,
    redis.ReadOnlyError,
)
_DECODED_CACHE_MAX = 200_000


@dataclass(frozen=True)
class Plan:
    """What one tick does with one due member: claim it, and maybe send it."""

    claim: Claim
    restore: Restore
    fields: dict[str, Any] | None = None  # None: nothing to send (parked)


def chunks(items: Sequence[Any], first: int, size: int) -> Iterator[Sequence[Any]]:
    """``items`` in a first chunk of ``first``, then chunks of ``size``."""
    start, step = 0, first
    while start < len(items):
        yield items[start : start + step]
        start, step = start + step, size


class RedBeatScheduler(Scheduler):  # type: ignore[misc]
    """Celery beat scheduler that keeps the schedule in Redis."""

    Entry = RedBeatSchedulerEntry

    #: Entries in the first chunk of a tick (small: the first message leaves fast).
    first_chunk = 100
    #: Entries per chunk after the first (bounds memory and lock renewal gaps).
    chunk_size = 5000
    #: Longest pause after consecutive Redis errors, in seconds.
    max_backoff = 30.0

    def __init__(
        self,
        app: Celery,
        lock_key: str | None = None,
        lock_timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        config = RedBeatConfig.from_app(app)
        if lock_key is not None:
            config = replace(config, lock_key=lock_key)
        if lock_timeout is not None:
            config = replace(config, lock_timeout=float(lock_timeout))
        self.binding = Binding(app, config)
        self.store = self.binding.store
        self.leader = Leadership(self.store.client, config.lock_key, config.lock_timeout)
        self._ready = False
        self._failures = 0
        self._decoded: dict[str, dict[str, Any]] = {}
        super().__init__(app, **kwargs)

    @property
    def max_wait(self) -> float:
        """The longest beat sleeps between ticks (Celery's beat_max_loop_interval)."""
        return float(self.max_interval)

    @property
    def config(self) -> RedBeatConfig:
        return self.binding.config

    # --- start-up ----------------------------------------------------------

    def setup_schedule(self) -> None:
        try:
            self._setup()
        except REDIS_ERRORS as exc:
            logger.warning('beat: Redis unavailable at start (%s); will keep trying.', exc)

    def _setup(self) -> None:
        self._check_eviction()
        self._sync_statics()
        self._adopt_orphans()
        self._ready = True

    def _check_eviction(self) -> None:
        policy = self.store.config_get('maxmemory-policy')
        maxmemory = self.store.config_get('maxmemory')
        if policy and policy.startswith('allkeys-') and maxmemory not in (None, '0'):
            logger.warning(
                'beat: Redis maxmemory-policy is %s with maxmemory %s: Redis may evict schedule '
                'entries under memory pressure. Use noeviction or a volatile-* policy.',
                policy,
                maxmemory,
            )

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
        """Write beat_schedule to Redis; delete entries removed from it since last start."""
        entries = self._static_entries()
        names = set(self.app.conf.beat_schedule or {}) | set(entries)
        removed = self.store.statics() - names
        if removed:
            logger.info(
                'beat: Removing entries no longer in beat_schedule: %s', ', '.join(sorted(removed))
            )
            self.store.delete(removed)
            self.store.forget_statics(removed)
        save_entries(list(entries.values()))
        self.store.add_statics(entries)

    def _adopt_orphans(self) -> None:
        """Schedule hashes written without a ZADD (the RedBeat README promises it)."""
        keys = self.config.keys
        for batch in self.store.scan_entry_keys():
            names = [keys.name_of(k) for k in batch]
            found = self.store.scores([*batch, *names])
            missing = [
                k
                for k, s, bare in zip(batch, found, found[len(batch) :])
                if s is None and bare is None
            ]
            scores: dict[str, float] = {}
            for row in self.store.fetch(missing):
                try:
                    scores[row.key] = self._initial_score(row)
                except DefinitionError as exc:
                    logger.error(
                        'beat: Entry %s cannot be scheduled and was skipped: %s',
                        row.key,
                        exc.reason,
                    )
            if self.store.add_missing(scores):
                logger.info(
                    'beat: Scheduled %d entries found without a schedule member.', len(scores)
                )

    def _initial_score(self, row: Row) -> float:
        if row.error:
            raise DefinitionError(row.key, row.error)
        fields = decode_definition(row.key, row.definition)
        last_run_at, _ = decode_meta(row.key, row.meta)
        if not fields['enabled']:
            return timing.NEVER
        if last_run_at is None:
            return timing.NOW
        return timing.to_score(timing.next_after(fields['schedule'], last_run_at, self.binding.tz))

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
        try:
            if not self._ready:
                self._setup()
            if not self.leader.ensure():
                return min(1.0, self.leader.renew_every, self.max_wait)
            self._dispatch_due()
            wait = self._until_next_due()
        except LeadershipLost as exc:
            self.leader.lost(str(exc))
            return min(1.0, self.max_wait)
        except REDIS_ERRORS as exc:
            self._failures += 1
            delay: float = min(self.max_backoff, 0.5 * 2.0 ** min(self._failures, 10))
            logger.warning(
                'beat: Redis error (%s: %s); retrying in %.1fs.', type(exc).__name__, exc, delay
            )
            return delay
        if self._failures:
            logger.warning('beat: Redis is reachable again after %d failed ticks.', self._failures)
            self._failures = 0
        return wait

    def _until_next_due(self) -> float:
        now = time.time()
        following = self.store.next_due(now)
        wait = self.max_wait if following is None else max(0.0, following - now)
        if self.leader.fence is not None:
            wait = min(wait, self.leader.renew_every)
        return min(wait, self.max_wait)

    def _dispatch_due(self) -> None:
        now_ts = time.time()
        now = datetime.fromtimestamp(now_ts, tz=timezone.utc)
        due = self.store.due(now_ts)
        for chunk in chunks(due, self.first_chunk, self.chunk_size):
            if not self.leader.ensure():
                raise LeadershipLost(self.config.lock_key or '')
            keys = [self.config.keys.key_of(member) for member, _ in chunk]
            rows = self.store.fetch(keys)
            plans = [
                self._plan(member, score, row, now) for (member, score), row in zip(chunk, rows)
            ]
            claimed = self.store.claim(
                [p.claim for p in plans], self.config.lock_key, self.leader.fence
            )
            failed = [
                p.restore
                for p, ok in zip(plans, claimed)
                if ok and p.fields and not self._send(p.fields)
            ]
            if failed:
                restored = self.store.rollback(failed, self.config.lock_key, self.leader.fence)
                logger.warning(
                    'beat: %d entries could not be sent; %d will be retried.', len(failed), restored
                )

    def _plan(self, member: str, score: str, row: Row, now: datetime) -> Plan:
        try:
            fields = self._decode(row)
            _, count = decode_meta(row.key, row.meta)
        except DefinitionError as exc:
            retry_at = now.timestamp() + self.max_wait
            logger.error(
                'beat: Entry %s skipped: %s. Its data is left as it is; looking again in %s.',
                exc.key,
                exc.reason,
                humanize_seconds(self.max_wait),
            )
            return self._park(member, score, row, retry_at)
        if not fields['enabled']:
            return self._park(member, score, row, timing.NEVER)
        scheduled = timing.from_score(float(score))
        scheduled_at = now if scheduled is None or float(score) == timing.NOW else scheduled
        last, following = timing.advance(fields['schedule'], scheduled_at, now, self.binding.tz)
        new_score = timing.to_score(following)
        claim = Claim(row.key, member, score, new_score, encode_meta(last, count + 1))
        restore = Restore(row.key, new_score, score, row.meta)
        return Plan(claim, restore, fields)

    def _park(self, member: str, score: str, row: Row, until: float) -> Plan:
        return Plan(
            Claim(row.key, member, score, until, None), Restore(row.key, until, score, row.meta)
        )

    def _decode(self, row: Row) -> dict[str, Any]:
        if row.error:
            raise DefinitionError(row.key, row.error)
        if row.definition is None:
            raise DefinitionError(
                row.key, 'is in the schedule but has no definition (no such hash)'
            )
        fields = self._decoded.get(row.definition)
        if fields is None:
            fields = decode_definition(row.key, row.definition)
            if len(self._decoded) >= _DECODED_CACHE_MAX:
                self._decoded.clear()
            self._decoded[row.definition] = fields
        return fields

    def _send(self, fields: dict[str, Any]) -> bool:
        """Publish one task as Celery's own scheduler would; False if it failed."""
        name = fields['task']
        options = dict(fields['options'])
        options['headers'] = {**options.get('headers', {}), 'celery_beat_task': True}
        logger.info('Scheduler: Sending due task %s (%s)', fields['name'], name)
        try:
            task = self.app.tasks.get(name)
            if task is not None:
                task.apply_async(
                    fields['args'], fields['kwargs'], producer=self.producer, **options
                )
            else:
                self.app.send_task(
                    name, fields['args'], fields['kwargs'], producer=self.producer, **options
                )
        except Exception as exc:
            logger.error(
                'beat: Could not send %s (%s): %s', fields['name'], name, exc, exc_info=True
            )
            return False
        return True

    # --- shutdown and banner -----------------------------------------------

    def close(self) -> None:
        try:
            self.leader.release()
        finally:
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
        return '\n'.join(lines)


#: The name the RedBeat README uses (``celery beat -S redbeat.RedisBeatScheduler``).
RedisBeatScheduler = RedBeatScheduler
