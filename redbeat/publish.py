"""Sending claimed occurrences to the broker, as Celery's own scheduler would.

Each message goes through the task's ``apply_async`` (or ``send_task`` for a
task not registered here) with the entry's options and Celery beat's
``celery_beat_task`` header, so routing, serializer, headers and the publish
signals are exactly Celery's.  Two things are added for speed and safety:

* messages are grouped with kombu's ``Producer.batch()`` where the transport
  supports it (one broker round trip per group instead of per message), and
  ``after_task_publish`` fires only once the group is flushed;
* each occurrence gets a deterministic task id, derived from the entry key and
  the occurrence time, so the same occurrence always carries the same id.

Failures are sorted in three kinds.  A broker that cannot be reached is
transient: the group being sent and everything after it is handed back
(:class:`Outcome.retry`) so the claims are rolled back and sent again later.
A batch whose flush broke midway may be partly in the broker
(:class:`Outcome.uncertain`): the scheduler hands it back only in
at-least-once mode, so by default nothing is ever sent twice.
Anything else is specific to one message (a routing function that raises,
say): that occurrence is logged and skipped, so one broken entry cannot
block the others or loop forever.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import signal
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

import redis
from celery import Celery, signals
from kombu import exceptions as kombu_errors

from . import direct
from .direct import NotDirect
from .templates import Templates

logger = logging.getLogger('celery.beat')

#: Namespace of occurrence task ids (uuid5 of "<key>@<occurrence ISO time>").
OCCURRENCE_NAMESPACE = uuid.UUID('6f1d3b0e-8a52-4c1e-9d0a-2f1c5b7e9a10')
_NAMESPACE_BYTES = OCCURRENCE_NAMESPACE.bytes

#: A batch flush that failed midway: delivery of its messages is unknown
#: (kombu < 5.7 has no batches, and no such error: then a never-raised stand-in).
UNCERTAIN: type[BaseException] = getattr(
    kombu_errors, 'BatchPublishError', type('_Never', (Exception,), {})
)
#: Errors that mean "the broker is not reachable now", not "this message is bad".
TRANSIENT: tuple[type[BaseException], ...] = (
    kombu_errors.OperationalError,
    UNCERTAIN,
    OSError,
    redis.ConnectionError,
    redis.TimeoutError,
)


#: The signals of a clean stop (Celery's handler raises SystemExit where beat is).
_STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})
#: True while :func:`stop_signals_held` holds them (main thread only).
_holding = False


@contextlib.contextmanager
def stop_signals_held() -> Iterator[None]:
    """Hold SIGTERM and SIGINT while a batch is written to the broker.

    Raised in the middle of the write, Celery's SystemExit would leave part of
    the group in the broker and part not, so the group could neither be handed
    back nor counted as sent.  Held, a stop is handled right after the flush
    (a few hundred microseconds; at most the broker's socket timeout).  The
    handlers are swapped, not the signal mask: a mask holds a signal for one
    thread only, and beat has others (remote control) that would take it.
    """
    global _holding
    if _holding:  # nested (a group's claim and send hold them, and its flush): held already
        yield
        return
    handlers = {number: signal.getsignal(number) for number in _STOP_SIGNALS}
    if threading.current_thread() is not threading.main_thread() or None in handlers.values():
        yield  # signal.signal works in the main thread only; None: a handler set from C
        return
    held: list[int] = []

    def hold(signum: int, frame: Any) -> None:
        held.append(signum)

    for number in handlers:
        signal.signal(number, hold)
    _holding = True
    try:
        yield
    finally:
        _holding = False
        for number, handler in handlers.items():
            signal.signal(number, handler)
        for signum in held:
            signal.raise_signal(signum)  # now, to the handler it was meant for


def occurrence_id(key: str, occurrence: datetime) -> str:
    """The task id of the occurrence of entry ``key`` at ``occurrence``.

    ``uuid.uuid5(OCCURRENCE_NAMESPACE, f'{key}@{occurrence.isoformat()}')``,
    computed without building UUID objects (it is made for every message).
    """
    name = f'{key}@{occurrence.isoformat()}'.encode()
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    text = digest.hex()
    return f'{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}'


def task_id_of(message: Message) -> str:
    """The task id a message is sent with: the entry's own, or the occurrence's."""
    return message.task_id


@dataclass(frozen=True)
class Message:
    """One occurrence to send: the decoded definition fields and its identity."""

    key: str
    fields: dict[str, Any]
    occurrence: datetime

    @cached_property
    def task_id(self) -> str:
        """The entry's own ``task_id`` option, or the occurrence's id (computed once)."""
        given = self.fields['options'].get('task_id')
        return str(given) if given else occurrence_id(self.key, self.occurrence)


#: Sends one message through a producer (raises what the broker raised).
SendOne = Callable[[Message, Any], Any]


@dataclass
class Outcome:
    """What happened to a list of messages, by index into that list."""

    sent: int = 0
    retry: list[int] = field(default_factory=list)  # broker unreachable: hand back
    skipped: list[int] = field(default_factory=list)  # message-specific error: logged
    #: In a batch whose flush failed: the broker may hold them or not.
    uncertain: list[int] = field(default_factory=list)
    #: Sending stopped by SIGTERM/Ctrl-C (Celery raises SystemExit from its
    #: signal handler): the caller hands back what is left, then re-raises it.
    interrupted: BaseException | None = None

    @property
    def failed(self) -> set[int]:
        return set(self.retry) | set(self.skipped) | set(self.uncertain)


class _Unbatchable(Exception):
    """A message of a batched group must go through ``apply_async`` after all."""


class Publisher:
    """Sends messages through one producer, ``group_size`` per broker round trip.

    A group goes out as one kombu batch when every message in it is sent from
    a template: their ``after_task_publish`` signals are held until the batch
    is flushed, so the signal means "the broker has it".  A group with a
    message for ``apply_async`` is published one message at a time instead
    (Celery fires the signal right after its own publish).
    """

    def __init__(self, app: Celery, producer: Callable[[], Any], group_size: int = 20) -> None:
        self.app = app
        self._producer = producer
        self.group_size = max(1, group_size)
        self.templates = Templates(app)
        self._fast = False
        self._done = 0  # messages of the current send() known to be in the broker
        self._flushing = False  # a batch is being written to the broker
        self._hooked: SendOne | None = None  # the current send()'s send_one
        self._channel_client: tuple[Any, Any] | None = None  # for direct pushes

    def _groups(self, count: int) -> Iterator[range]:
        for start in range(0, count, self.group_size):
            yield range(start, min(start + self.group_size, count))

    def send(
        self,
        messages: Sequence[Message],
        between_groups: Callable[[], None],
        send_one: SendOne | None = None,
    ) -> Outcome:
        """Send ``messages``; ``between_groups`` runs after each group (lock renewal).

        ``send_one(message, producer)`` replaces the built-in send of one
        message (the scheduler's hooked path: a subclass or instrumentation
        overriding Celery's per-entry methods); such messages are published
        one at a time, and the grouping, the sorting of failures and the
        hand-backs stay the same.
        """
        outcome = Outcome()
        self._fast = self.templates.usable()
        self._hooked = send_one
        self._done, self._flushing = 0, False
        try:
            self._send_groups(messages, between_groups, outcome)
        except (KeyboardInterrupt, SystemExit) as exc:
            # A clean stop in the middle of a group: what is not in the broker
            # is handed back (a batch not flushed was discarded), so a stop
            # loses nothing; a batch cut while being written is of unknown delivery.
            done = self._done
            if self._flushing:
                stop = min(len(messages), done + self.group_size)
                outcome.uncertain.extend(range(done, stop))
                done = stop
            outcome.retry.extend(range(done, len(messages)))
            outcome.interrupted = exc
        return outcome

    def _send_groups(
        self, messages: Sequence[Message], between_groups: Callable[[], None], outcome: Outcome
    ) -> None:
        for group in self._groups(len(messages)):
            start = group.start
            if not self._batchable(messages, group):
                if not self._send_singly(messages, group, outcome):
                    return
                between_groups()
                continue
            try:
                self._send_batch(messages, group)
            except UNCERTAIN as exc:
                # The pipeline broke while being written: some messages may be
                # in the broker.  The caller decides (never twice, or at least once).
                cause = exc.__cause__ or exc
                logger.warning('beat: Broker failed during a batch (%s); delivery of '
                               '%d messages is unknown.', cause, len(group))  # fmt: skip
                outcome.uncertain.extend(group)
                outcome.retry.extend(range(group.stop, len(messages)))
                return
            except TRANSIENT as exc:
                logger.warning('beat: Broker unavailable (%s: %s).', type(exc).__name__, exc)
                outcome.retry.extend(range(start, len(messages)))
                return
            except Exception:
                # The batch was discarded: send the group one by one (finds a broken message).
                if not self._send_singly(messages, group, outcome):
                    return
            else:
                outcome.sent += len(group)
            between_groups()

    def _batchable(self, messages: Sequence[Message], group: range) -> bool:
        if self._hooked is not None or not self._fast or len(group) < 2:
            return False
        if not hasattr(self._producer(), 'batch'):
            return False
        return all(self.templates.batchable(messages[i].fields) for i in group)

    @contextlib.contextmanager
    def _client(self, channel: Any) -> Iterator[Any]:
        """The channel's Redis client, made once per channel instead of once per group.

        kombu's ``conn_or_acquire()`` makes a new client on the channel's
        connection pool each time and does nothing on exit; keeping it is the same.
        """
        if self._channel_client is None or self._channel_client[0] is not channel:
            with channel.conn_or_acquire() as client:
                self._channel_client = (channel, client)
        yield self._channel_client[1]

    def _send_batch(self, messages: Sequence[Message], group: range) -> None:
        """Publish ``group`` in one batch; fire its signals once the broker has it.

        With a plain Redis broker, the messages of kinds verified for it are
        pushed directly (:mod:`redbeat.direct`) and the others go through the
        kombu batch; both are written one after the other with stop signals
        held, and a write that broke midway makes the whole group of unknown
        delivery, as a kombu batch whose flush broke.
        """
        producer = self._producer()
        channel = direct.channel_of(producer)
        signalled: list[dict[str, Any]] = []
        pushes: list[tuple[direct.Envelope, str]] = []
        templates = self.templates
        templates.deferred = signalled
        try:
            # max_size: no automatic flush inside the group (a message takes a
            # few broker commands), so the group is flushed once, at the end.
            # Decided for the whole group first: a kind verified by a message of
            # this group is pushed from the next group on.
            push = [channel is not None and templates.pushable(messages[i].fields) for i in group]
            with producer.batch(max_size=8 * len(group)) as batch:
                for index, pushed in zip(group, push):
                    message = messages[index]
                    if pushed:
                        templates.pushes = pushes
                        logger.info('Scheduler: Sending due task %s (%s)',
                                    message.fields['name'], message.fields['task'])  # fmt: skip
                        templates.push(message.fields, message.key, message.task_id, producer)
                        continue
                    templates.pushes = None
                    if not self._send_one(message, producer, batched=True):
                        raise _Unbatchable
                templates.pushes = None
                with self._client(channel) if pushes else contextlib.nullcontext() as client:
                    keyed = self._route(channel, client, pushes) if pushes else []
                    with stop_signals_held():
                        self._flushing = True  # until flushed: an interruption leaves it set
                        batch.flush()
                        if keyed:
                            self._push(client, keyed)
                        self._done, self._flushing = group.stop, False
                        for kwargs in signalled:
                            signals.after_task_publish.send(**kwargs)
        finally:
            templates.deferred = templates.pushes = None

    def _route(
        self, channel: Any, client: Any, pushes: list[tuple[direct.Envelope, str]]
    ) -> list[tuple[str, str]]:
        """The list each push goes onto, with the bindings read once for the group."""
        exchanges = {envelope.exchange for envelope, _ in pushes if envelope.exchange}
        tables = direct.lookup_tables(client, channel, exchanges)
        keys: dict[direct.Envelope, str] = {}  # a group's pushes share a few envelopes
        try:
            for envelope in {envelope for envelope, _ in pushes}:
                keys[envelope] = direct.queue_key(channel, envelope, tables)
        except NotDirect as exc:  # the bindings changed: kombu routes from now on
            self.templates.refuse_direct({envelope for envelope, _ in pushes}, exc)
            raise _Unbatchable from exc
        return [(keys[envelope], text) for envelope, text in pushes]

    def _push(self, client: Any, keyed: list[tuple[str, str]]) -> None:
        """Write the group's pushes in one pipeline (any failure: delivery unknown)."""
        try:
            with client.pipeline(transaction=False) as pipe:
                for key, texts in direct.by_key(keyed).items():
                    pipe.lpush(key, *texts)
                pipe.execute()
        except Exception as exc:
            raise UNCERTAIN('Redis publish batch failed; delivery is uncertain') from exc

    def _send_singly(self, messages: Sequence[Message], group: range, outcome: Outcome) -> bool:
        """Publish each message of ``group`` on its own; False if the broker went away."""
        producer = self._producer()
        one = self._hooked or self._send_one
        for index in group:
            message = messages[index]
            try:
                one(message, producer)
            except TRANSIENT as exc:
                logger.warning('beat: Broker unavailable (%s: %s).', type(exc).__name__, exc)
                outcome.retry.extend(range(index, len(messages)))
                return False
            except Exception as exc:
                name = message.fields['name']
                logger.error('beat: Could not send %s (%s); this occurrence is skipped: %s',
                             name, message.fields['task'], exc, exc_info=True)  # fmt: skip
                outcome.skipped.append(index)
            else:
                outcome.sent += 1
            self._done = index + 1
        return True

    def _send_one(self, message: Message, producer: Any, batched: bool = False) -> bool:
        """Publish one message; False (nothing published) if, ``batched``, it needs apply_async."""
        fields = message.fields
        name = fields['task']
        options = dict(fields['options'])
        options['headers'] = {**(options.get('headers') or {}), 'celery_beat_task': True}
        options['task_id'] = message.task_id
        logger.info('Scheduler: Sending due task %s (%s)', fields['name'], name)
        if self._fast and self.templates.send(fields, message.key, options, producer):
            return True
        if batched:
            return False
        task = self.app.tasks.get(name)
        if task is not None:
            task.apply_async(fields['args'], fields['kwargs'], producer=producer, **options)
        else:
            self.app.send_task(name, fields['args'], fields['kwargs'], producer=producer, **options)
        return True
