"""What beat tells operators about its work: Prometheus metrics and the events stream.

The scheduler holds one :class:`Observer` and calls it at a handful of points
(tick start and end, claims, publish outcomes, parking, leadership).  The
base class does nothing, so with metrics and events off (the default) those
calls cost a method call per tick or chunk, never a loop over entries.
:class:`Watcher` is the real one: Prometheus metrics when ``redbeat_metrics``
is set (prometheus_client, the ``redbeat-scheduler[metrics]`` extra), events when
``redbeat_events`` is on.  Events are queued on the scheduler's
:class:`~redbeat.store.Writes`, so they go to Redis with the next round trip
beat makes anyway.  The metric names and their meaning are listed in
docs/observability.rst.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from .config import METRICS_REGISTRY, RedBeatConfig
from .errors import ConfigurationError
from .events import Event

if TYPE_CHECKING:
    from .publish import Message, Outcome
    from .store import Claim, Writes

#: Seconds between two counts of the schedule's entries (one round trip each).
CENSUS_EVERY = 15.0
#: Upper bounds (seconds) of the send lateness histogram: from "on time" to
#: "beat was down for minutes"; an alert on p99 > 5 s falls between buckets.
LATENESS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)
TICK_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
DUE_BUCKETS = (1, 10, 100, 1_000, 10_000, 100_000)


class Planned(Protocol):
    """What the observer reads of a claimed plan (:class:`redbeat.schedulers.Plan`)."""

    @property
    def claim(self) -> Claim: ...

    @property
    def fields(self) -> dict[str, Any] | None: ...


class Observer:
    """Told by the scheduler what it does; this one ignores it all (metrics and events off)."""

    #: True when :meth:`claimed` wants every claimed plan (else the scheduler may skip the call).
    active = False

    def start(self) -> None:
        """Start serving metrics, if configured (binds a port, no Redis I/O)."""

    def close(self) -> None:
        """Stop serving metrics."""

    def tick_started(self) -> None:
        """A leader tick begins."""

    def tick_finished(self, due: int) -> None:
        """The tick handled ``due`` due entries."""

    def redis_error(self, exc: BaseException) -> None:
        """The tick stopped on a Redis error (beat retries with backoff)."""

    def claimed(self, plans: Sequence[Planned]) -> None:
        """These plans were claimed: their missed and skipped occurrences are final."""

    def published(self, messages: Sequence[Message], outcome: Outcome, sent_at: float) -> None:
        """``messages`` went to the broker with this outcome, at ``sent_at`` (UNIX seconds)."""

    def parked(self, key: str, reason: str, again_in: float) -> None:
        """Entry ``key`` cannot be read and was parked (its data is left alone); beat
        looks at it again in ``again_in`` seconds."""

    def leadership(self, held: bool, token: str, why: str = '') -> None:
        """This beat (lock ``token``) gained (``held``) or lost the lock."""

    def renewed(self) -> None:
        """This beat renewed the lock."""

    def census_due(self, now: float) -> bool:
        """True when the entry counts should be read again (:meth:`census`)."""
        return False

    def census(self, total: int, enabled: int, now: float) -> None:
        """The schedule holds ``total`` entries, ``enabled`` of them not disabled or finished."""


class Metrics:
    """The Prometheus metrics of one beat, registered on ``registry``."""

    def __init__(self, registry: Any, per_entry: bool) -> None:
        from prometheus_client import Counter as PCounter
        from prometheus_client import Gauge, Histogram

        labels = ['task', 'entry'] if per_entry else ['task']
        self.per_entry = per_entry
        self.registry = registry
        reg = {'registry': registry}
        self.sent = PCounter(
            'redbeat_occurrences_sent', 'Occurrences sent to the broker.', labels, **reg
        )
        self.missed = PCounter(
            'redbeat_occurrences_missed',
            'Occurrences not sent: older than the catch-up window.',
            labels,
            **reg,
        )
        self.skipped = PCounter(
            'redbeat_occurrences_skipped',
            'Occurrences not sent by the missed-run policy (late ones of once/skip).',
            labels,
            **reg,
        )
        self.failed = PCounter(
            'redbeat_publish_failures',
            'Occurrences the broker did not take: reason broker_unavailable (handed back, '
            'sent again later) or error (this message could not be sent; skipped).',
            [*labels, 'reason'],
            **reg,
        )
        self.lateness = Histogram(
            'redbeat_send_lateness_seconds',
            'Seconds from an occurrence being due to its message being sent.',
            buckets=LATENESS_BUCKETS,
            **reg,
        )
        self.tick = Histogram(
            'redbeat_tick_duration_seconds',
            'Seconds one leader tick took (load, claim, send).',
            buckets=TICK_BUCKETS,
            **reg,
        )
        self.due = Histogram(
            'redbeat_tick_due_entries',
            'Due entries one tick handled (ticks with none due are not observed).',
            buckets=DUE_BUCKETS,
            **reg,
        )
        self.last_tick = Gauge(
            'redbeat_last_tick_timestamp_seconds',
            'When this beat last finished a tick as leader (UNIX time).',
            multiprocess_mode='max',
            **reg,
        )
        self.leader = Gauge(
            'redbeat_leader',
            '1 while this beat holds the lock and dispatches, else 0.',
            multiprocess_mode='livesum',
            **reg,
        )
        self.acquired = PCounter(
            'redbeat_lock_acquisitions', 'Times this beat took the lock.', **reg
        )
        self.renewals = PCounter('redbeat_lock_renewals', 'Lock renewals by this beat.', **reg)
        self.losses = PCounter(
            'redbeat_lock_losses', 'Times this beat lost the lock while leading.', **reg
        )
        self.entries = Gauge(
            'redbeat_entries', 'Entries in the schedule.', multiprocess_mode='livemax', **reg
        )
        self.enabled = Gauge(
            'redbeat_entries_enabled',
            'Entries that are neither disabled nor finished.',
            multiprocess_mode='livemax',
            **reg,
        )
        self.parked = Gauge(
            'redbeat_entries_parked',
            'Entries that cannot be read and are parked (see redbeat check).',
            multiprocess_mode='livemax',
            **reg,
        )
        self.redis_errors = PCounter(
            'redbeat_redis_errors',
            'Ticks that stopped on a Redis error, by error class.',
            ['error'],
            **reg,
        )


#: Metrics already registered on prometheus_client's default registry: a second
#: scheduler in one process (tests, embedded beat) reuses them.
_SHARED: dict[bool, Metrics] = {}


def _shared_metrics(per_entry: bool) -> Metrics:
    from prometheus_client import REGISTRY

    if per_entry not in _SHARED:
        _SHARED[per_entry] = Metrics(REGISTRY, per_entry)
    return _SHARED[per_entry]


class Watcher(Observer):
    """Metrics (when configured) and events (when on) for one scheduler."""

    active = True

    def __init__(self, config: RedBeatConfig, writes: Writes) -> None:
        self.config = config
        self.writes = writes
        self.events = config.events_maxlen > 0
        self.names = config.keys
        #: An entry parked this long ago and not parked again since is no longer
        #: counted (deleted, or fixed): parked entries are looked at again and again.
        self.parked_for = float('inf')
        self._parked: dict[str, float] = {}  # key -> when last parked
        self._started = 0.0
        self._census_at = float('-inf')
        self._server: Any = None
        self._last_tick = 0.0
        #: Served from this process: the last tick is read when scraped, not set every tick.
        self._push_last_tick = config.metrics == METRICS_REGISTRY
        self.metrics: Metrics | None = None
        if config.metrics is not None:
            self.metrics = self._make_metrics()
            if not self._push_last_tick:
                self.metrics.last_tick.set_function(lambda: self._last_tick)

    def _make_metrics(self) -> Metrics:
        try:
            import prometheus_client  # noqa: F401
        except ImportError:
            raise ConfigurationError(
                'redbeat_metrics',
                "needs prometheus_client: pip install 'redbeat-scheduler[metrics]'",
            ) from None
        if self.config.metrics == METRICS_REGISTRY:
            return _shared_metrics(self.config.metrics_per_entry)
        from prometheus_client import CollectorRegistry

        return Metrics(CollectorRegistry(), self.config.metrics_per_entry)

    @property
    def registry(self) -> Any:
        """The registry served on the metrics port (None in ``'registry'`` mode or off)."""
        if self.metrics is None or self.config.metrics == METRICS_REGISTRY:
            return None
        return self.metrics.registry

    def start(self) -> None:
        if self.metrics is not None and self.config.lock_key is None:
            self.metrics.leader.set(1)  # no lock: every beat dispatches
        port = self.config.metrics
        if self._server is not None or not isinstance(port, int) or self.metrics is None:
            return
        from prometheus_client import start_http_server

        address = self.config.metrics_address
        try:
            self._server, _ = start_http_server(port, address, registry=self.registry)
        except OSError as exc:
            raise ConfigurationError(
                'redbeat_metrics', f'cannot serve metrics on {address}:{port}: {exc}'
            ) from None

    def close(self) -> None:
        if self.metrics is not None:
            self.metrics.leader.set(0)  # stopping: this beat no longer dispatches
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _event(self, kind: str, **fields: Any) -> None:
        if self.events:
            self.writes.events_maxlen = self.config.events_maxlen
            self.writes.events.append(Event(kind, time.time(), fields).fields())

    def _labels(self, key: str, fields: dict[str, Any] | None) -> tuple[str, ...]:
        task = str(fields['task']) if fields else ''
        if self.metrics is not None and self.metrics.per_entry:
            return (task, self.names.name_of(key))
        return (task,)

    # --- the tick ------------------------------------------------------------

    def tick_started(self) -> None:
        self._started = time.perf_counter()

    def tick_finished(self, due: int) -> None:
        if self.metrics is None:
            return
        self.metrics.tick.observe(time.perf_counter() - self._started)
        if due:  # idle ticks: tick_duration's count minus this one's (an idle tick stays cheap)
            self.metrics.due.observe(due)
        self._last_tick = time.time()
        if self._push_last_tick:
            self.metrics.last_tick.set(self._last_tick)

    def redis_error(self, exc: BaseException) -> None:
        if self.metrics is not None:
            self.metrics.redis_errors.labels(type(exc).__name__).inc()

    def claimed(self, plans: Sequence[Planned]) -> None:
        missed: Counter[tuple[str, ...]] = Counter()
        skipped: Counter[tuple[str, ...]] = Counter()
        for plan in plans:
            claim = plan.claim
            if self._parked and claim.key in self._parked and plan.fields is not None:
                del self._parked[claim.key]  # readable again
            if not (claim.missed or claim.skipped):
                continue
            labels = self._labels(claim.key, plan.fields)
            name = self.names.name_of(claim.key)
            if claim.missed:
                missed[labels] += claim.missed
                self._event('missed', entry=name, task=labels[0], count=claim.missed)
            if claim.skipped:
                skipped[labels] += claim.skipped
                self._event('skipped', entry=name, task=labels[0], count=claim.skipped)
        if self.metrics is not None:
            for labels, n in missed.items():
                self.metrics.missed.labels(*labels).inc(n)
            for labels, n in skipped.items():
                self.metrics.skipped.labels(*labels).inc(n)

    def published(self, messages: Sequence[Message], outcome: Outcome, sent_at: float) -> None:
        failed = outcome.failed
        if failed:
            self._failures(messages, outcome)
        if self.metrics is None:
            return
        taken = [m for i, m in enumerate(messages) if i not in failed] if failed else messages
        sent: Counter[Any]
        if self.metrics.per_entry:
            sent = Counter(self._labels(m.key, m.fields) for m in taken)
        else:  # by task alone: no tuple made per message
            sent = Counter([m.fields['task'] for m in taken])
        observe = self.metrics.lateness.observe
        for message in taken:
            observe(sent_at - message.occurrence.timestamp())
        for key, n in sent.items():
            labels = key if self.metrics.per_entry else (key,)
            self.metrics.sent.labels(*labels).inc(n)

    def _failures(self, messages: Sequence[Message], outcome: Outcome) -> None:
        for reason, indices in (('broker_unavailable', outcome.retry), ('error', outcome.skipped)):
            for index in indices:
                message = messages[index]
                labels = self._labels(message.key, message.fields)
                if self.metrics is not None:
                    self.metrics.failed.labels(*labels, reason).inc()
                self._event(
                    'publish_failed',
                    entry=self.names.name_of(message.key),
                    task=labels[0],
                    reason=reason,
                    occurrence=message.occurrence.isoformat(),
                )

    def parked(self, key: str, reason: str, again_in: float) -> None:
        now = time.time()
        # Not parked again within two retry periods: deleted, or fixed and disabled.
        self.parked_for = 2 * again_in
        if key not in self._parked:  # each time it is looked at again: one event is enough
            self._event('parked', entry=self.names.name_of(key), reason=reason)
        self._parked[key] = now
        if self.metrics is not None:
            self.metrics.parked.set(self._parked_count(now))

    def _parked_count(self, now: float) -> int:
        for key, at in list(self._parked.items()):
            if now - at > self.parked_for:
                del self._parked[key]
        return len(self._parked)

    # --- leadership ------------------------------------------------------------

    def leadership(self, held: bool, token: str, why: str = '') -> None:
        if self.metrics is not None:
            self.metrics.leader.set(1 if held else 0)
            (self.metrics.acquired if held else self.metrics.losses).inc()
        if held:
            self._event('leader_gained', lock=self.config.lock_key or '', token=token)
        else:
            self._event('leader_lost', lock=self.config.lock_key or '', token=token, reason=why)

    def renewed(self) -> None:
        if self.metrics is not None:
            self.metrics.renewals.inc()

    # --- entry counts ------------------------------------------------------------

    def census_due(self, now: float) -> bool:
        return self.metrics is not None and now - self._census_at >= CENSUS_EVERY

    def census(self, total: int, enabled: int, now: float) -> None:
        self._census_at = now
        if self.metrics is not None:
            self.metrics.entries.set(total)
            self.metrics.enabled.set(enabled)
            self.metrics.parked.set(self._parked_count(now))


def make_observer(config: RedBeatConfig, writes: Writes) -> Observer:
    """The observer ``config`` asks for: a :class:`Watcher`, or the no-op one when all is off."""
    if config.metrics is None and config.events_maxlen == 0:
        return Observer()
    return Watcher(config, writes)
