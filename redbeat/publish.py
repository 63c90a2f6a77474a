"""Sending claimed occurrences to the broker, as Celery's own scheduler would.

Each message goes through the task's ``apply_async`` (or ``send_task`` for a
task not registered here) with the entry's options and Celery beat's
``celery_beat_task`` header, so routing, serializer, headers and the publish
signals are exactly Celery's.  Two things are added for speed and safety:

* messages are grouped with kombu's ``Producer.batch()`` where the transport
  supports it (one broker round trip per group instead of per message);
* each occurrence gets a deterministic task id, derived from the entry key and
  the occurrence time, so the same occurrence always carries the same id.

Failures are sorted in two kinds.  A broker that cannot be reached is
transient: the group being sent and everything after it is handed back
(:class:`Outcome.retry`) so the claims are rolled back and sent again later.
Anything else is specific to one message (a routing function that raises,
say): that occurrence is logged and skipped, so one broken entry cannot
block the others or loop forever.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

import redis
from celery import Celery
from kombu import exceptions as kombu_errors

from .templates import Templates

logger = logging.getLogger('celery.beat')

#: Namespace of occurrence task ids (uuid5 of "<key>@<occurrence ISO time>").
OCCURRENCE_NAMESPACE = uuid.UUID('6f1d3b0e-8a52-4c1e-9d0a-2f1c5b7e9a10')
_NAMESPACE_BYTES = OCCURRENCE_NAMESPACE.bytes

#: Errors that mean "the broker is not reachable now", not "this message is bad".
#: (BatchPublishError: a batch flush failed, delivery of its messages unknown.)
TRANSIENT: tuple[type[BaseException], ...] = (
    kombu_errors.OperationalError,
    getattr(kombu_errors, 'BatchPublishError', kombu_errors.OperationalError),
    OSError,
    redis.ConnectionError,
    redis.TimeoutError,
)


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
SendOne = Callable[[Message, Any], None]


@dataclass
class Outcome:
    """What happened to a list of messages, by index into that list."""

    sent: int = 0
    retry: list[int] = field(default_factory=list)  # broker unreachable: hand back
    skipped: list[int] = field(default_factory=list)  # message-specific error: logged

    @property
    def failed(self) -> set[int]:
        return set(self.retry) | set(self.skipped)


class Publisher:
    """Sends messages through one producer, ``group_size`` per broker round trip."""

    def __init__(self, app: Celery, producer: Callable[[], Any], group_size: int = 200) -> None:
        self.app = app
        self._producer = producer
        self.group_size = max(1, group_size)
        self.templates = Templates(app)
        self._fast = False

    #: Messages in the first group: few, so the first message reaches the broker at once.
    first_group = 10

    def _groups(self, count: int) -> Iterator[range]:
        start, size = 0, min(self.first_group, self.group_size)
        while start < count:
            yield range(start, min(start + size, count))
            start, size = start + size, self.group_size

    def send(
        self,
        messages: Sequence[Message],
        between_groups: Callable[[], None],
        send_one: SendOne | None = None,
    ) -> Outcome:
        """Send ``messages``; ``between_groups`` runs after each group (lock renewal).

        ``send_one(message, producer)`` replaces the built-in send of one
        message (the scheduler's hooked path: a subclass or instrumentation
        overriding Celery's per-entry methods); grouping, the sorting of
        failures and hand-backs stay the same.
        """
        outcome = Outcome()
        self._fast = self.templates.usable()
        one = send_one or self._send_one
        for group in self._groups(len(messages)):
            start = group.start
            try:
                self._send_group(messages, group, one)
            except TRANSIENT as exc:
                logger.warning('beat: Broker unavailable (%s: %s).', type(exc).__name__, exc)
                outcome.retry.extend(range(start, len(messages)))
                return outcome
            except Exception:
                # One message is at fault: send the group one by one to find it.
                self._send_singly(messages, group, outcome, one)
            else:
                outcome.sent += len(group)
            between_groups()
        return outcome

    def _send_group(self, messages: Sequence[Message], group: range, one: SendOne) -> None:
        producer = self._producer()
        batch = producer.batch() if len(group) > 1 and hasattr(producer, 'batch') else None
        with batch if batch is not None else contextlib.nullcontext():
            for index in group:
                one(messages[index], producer)

    def _send_singly(
        self, messages: Sequence[Message], group: range, outcome: Outcome, one: SendOne
    ) -> None:
        producer = self._producer()
        for index in group:
            message = messages[index]
            try:
                one(message, producer)
            except TRANSIENT as exc:
                logger.warning('beat: Broker unavailable (%s: %s).', type(exc).__name__, exc)
                outcome.retry.extend(range(index, len(messages)))
                return
            except Exception as exc:
                name = message.fields['name']
                logger.error('beat: Could not send %s (%s); this occurrence is skipped: %s',
                             name, message.fields['task'], exc, exc_info=True)  # fmt: skip
                outcome.skipped.append(index)
            else:
                outcome.sent += 1

    def _send_one(self, message: Message, producer: Any) -> None:
        fields = message.fields
        name = fields['task']
        options = dict(fields['options'])
        options['headers'] = {**(options.get('headers') or {}), 'celery_beat_task': True}
        options['task_id'] = message.task_id
        logger.info('Scheduler: Sending due task %s (%s)', fields['name'], name)
        if self._fast and self.templates.send(fields, message.key, options, producer):
            return
        task = self.app.tasks.get(name)
        if task is not None:
            task.apply_async(fields['args'], fields['kwargs'], producer=producer, **options)
        else:
            self.app.send_task(name, fields['args'], fields['kwargs'], producer=producer, **options)
