"""Task messages written straight to a Redis broker, as kombu's Redis transport writes them.

With a Redis broker kombu turns each message into one JSON text and
``LPUSH``\\ es it onto the queue's list (``kombu.transport.redis.Channel._put``).
For a beat entry that text is the same every time except for a few values:
the task id, kombu's ``delivery_tag`` (a fresh uuid4), the base64 body and
the ``argsrepr``/``kwargsrepr`` headers.  An :class:`Envelope` is that text cut
at those values, taken from what kombu itself pushed for one message of the
kind; a send fills in the values and pushes the text with the others of its
group in one pipeline, skipping kombu's per-message work (message dicts,
exchange table lookup per message, JSON of the whole envelope).

Nothing is trusted on construction.  :mod:`redbeat.templates` builds an
envelope from kombu's own ``LPUSH`` of one message (the text must come back
exactly from its own values) and trusts it only after kombu's ``LPUSH`` of a
second message of the kind, with other arguments and ids, equals the
envelope filled with that message's values, queue list included.  Anything
this module does not model sends through kombu: any channel but kombu's own
Redis channel (``redis://`` and ``rediss://`` use it; sentinel, amqp, memory or a
subclass do not), a ``global_keyprefix``, queues with an expiry, exchanges that
are not direct, a routing key bound to no queue or to several, compression.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.utils import json as kombu_json

#: The values a send fills in, in :meth:`Envelope.render`'s argument order.
SLOTS = ('id', 'tag', 'body', 'argsrepr', 'kwargsrepr')
_MARK = '\x00redbeat-slot-{}\x00'
_MARKED = re.compile('|'.join(re.escape(json.dumps(_MARK.format(s))) for s in SLOTS))
_SLOT_OF = {json.dumps(_MARK.format(s)): i for i, s in enumerate(SLOTS)}


def kombu_dumps(value: Any) -> str:
    """JSON text as kombu's Redis transport writes a message."""
    return str(kombu_json.dumps(value))  # type: ignore[no-untyped-call]


class NotDirect(Exception):
    """This message or group cannot be written directly: it goes through kombu."""


@dataclass(frozen=True)
class Envelope:
    """One kind's ``LPUSH`` text cut at the per-message values, and where it goes."""

    parts: tuple[str, ...]  # literal text; slots[i] goes between parts[i] and parts[i + 1]
    slots: tuple[int, ...]  # index into SLOTS
    exchange: str
    routing_key: str
    priority: int  # the message's priority property (picks the queue list)

    @classmethod
    def cut(cls, payload: str, values: Sequence[str], exchange: str, routing_key: str) -> Envelope:
        """The envelope of kombu's ``payload``; NotDirect if it does not come back exactly.

        ``values`` are the message's own values of :data:`SLOTS`.  The task id
        is replaced wherever it is a whole value (``id``, ``root_id``,
        ``correlation_id``), the others at their one known place.
        """
        message = json.loads(payload)
        if not isinstance(message, dict):
            raise NotDirect('not a kombu envelope')
        headers, properties = message.get('headers'), message.get('properties')
        if not isinstance(headers, dict) or not isinstance(properties, dict):
            raise NotDirect('not a kombu envelope')
        task_id = values[0]
        marked = _replace(message, task_id, _MARK.format('id'))
        marked['properties']['delivery_tag'] = _MARK.format('tag')
        marked['body'] = _MARK.format('body')
        marked['headers']['argsrepr'] = _MARK.format('argsrepr')
        marked['headers']['kwargsrepr'] = _MARK.format('kwargsrepr')
        text = kombu_dumps(marked)
        parts, slots, at = [], [], 0
        for found in _MARKED.finditer(text):
            parts.append(text[at : found.start()])
            slots.append(_SLOT_OF[found.group()])
            at = found.end()
        parts.append(text[at:])
        priority = properties.get('priority')
        envelope = cls(tuple(parts), tuple(slots), exchange, routing_key,
                       priority if isinstance(priority, int) else 0)  # fmt: skip
        if envelope.render(values) != payload:
            raise NotDirect('the envelope does not give back what kombu pushed')
        return envelope

    def render(self, values: Sequence[str]) -> str:
        """The ``LPUSH`` text with ``values`` (in :data:`SLOTS` order) filled in."""
        return self.render_encoded([json.dumps(value) for value in values])

    def render_encoded(self, encoded: Sequence[str]) -> str:
        """:meth:`render` with the values given as JSON text already."""
        out = [self.parts[0]]
        for slot, part in zip(self.slots, self.parts[1:]):
            out.append(encoded[slot])
            out.append(part)
        return ''.join(out)


def _replace(value: Any, old: str, new: str) -> Any:
    """A copy of a decoded JSON ``value`` with every string equal to ``old`` made ``new``."""
    if isinstance(value, dict):
        return {k: _replace(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace(v, old, new) for v in value]
    return new if value == old else value


def values_of(payload: str) -> tuple[str, str]:
    """The ``delivery_tag`` and base64 body kombu put in ``payload``."""
    message = json.loads(payload)
    return message['properties']['delivery_tag'], message['body']


def new_tag() -> str:
    """A delivery tag as kombu's virtual channel makes it: ``str(uuid4())``.

    Written from 16 random bytes as ``uuid.UUID(bytes=..., version=4)`` would
    be, without building the object (one per message).
    """
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    text = raw.hex()
    return f'{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}'


def encode_body(serialized: Any, content_encoding: str | None) -> str:
    """The message body as kombu's Redis transport stores it (base64 of the bytes)."""
    data = (
        serialized.encode(content_encoding or 'utf-8')
        if isinstance(serialized, str)
        else serialized
    )
    return base64.b64encode(data).decode('ascii')


def channel_of(producer: Any) -> Any | None:
    """The producer's channel if it is kombu's plain Redis channel in a setup modelled here."""
    channel = producer.channel
    # Exactly the Redis channel: its subclasses (sentinel, or a user's) may route otherwise.
    if type(channel) is not kombu_redis.Channel:
        return None
    if channel.global_keyprefix:  # keys prefixed by kombu's client: not modelled
        return None
    # Queues declared with x-expires get a PEXPIRE with each LPUSH (not modelled).
    if getattr(channel, '_expires', None):
        return None
    if producer.exchange.name:  # kombu would declare the producer's own exchange
        return None
    return channel


def lookup_tables(
    client: Any, channel: Any, exchanges: set[str]
) -> dict[str, list[tuple[str, ...]]]:
    """The binding tables of ``exchanges``, in one round trip (kombu reads one per message)."""
    names = sorted(exchanges)
    if not names:
        return {}
    with client.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.smembers(channel.keyprefix_queue % name)
        found = pipe.execute()
    return {
        name: [tuple(text(row).split(channel.sep)) for row in rows]
        for name, rows in zip(names, found)
    }


def by_key(keyed: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    """The texts to push per list, in order: one LPUSH of several values per list.

    ``LPUSH key a b`` leaves the list as ``LPUSH key a`` then ``LPUSH key b``
    would, with one command to pack and one reply to read instead of one per message.
    """
    lists: dict[str, list[str]] = {}
    for key, payload in keyed:
        lists.setdefault(key, []).append(payload)
    return lists


def text(value: str | bytes) -> str:
    """A key or value of a Redis command as text."""
    return value.decode() if isinstance(value, bytes) else value


def batch_pipeline(producer: Any) -> Any | None:
    """The redis-py pipeline of the producer's open kombu batch, if one is open and started.

    kombu keeps it out of sight (the batch's state is per thread, created at the
    first publish); it is only read, to see the commands kombu itself queued.
    Any change in kombu's layout gives None: then nothing is ever pushed directly.
    """
    state = getattr(getattr(producer, '_batch_local', None), 'current', None)
    pipeline = getattr(getattr(state, 'session', None), 'pipeline', None)
    return pipeline if isinstance(getattr(pipeline, 'command_stack', None), list) else None


def queue_key(channel: Any, envelope: Envelope, tables: Mapping[str, list[tuple[str, ...]]]) -> str:
    """The list kombu would push ``envelope``'s messages onto; NotDirect if not exactly one."""
    if not envelope.exchange:
        queues = {envelope.routing_key}
    else:
        kind = channel.typeof(envelope.exchange)
        if kind.type != 'direct':
            raise NotDirect(f'exchange {envelope.exchange!r} is {kind.type}, not direct')
        queues = kind.lookup(tables.get(envelope.exchange, []), envelope.exchange,
                             envelope.routing_key, None)  # fmt: skip
    if len(queues) != 1:
        raise NotDirect(f'routing key {envelope.routing_key!r} is bound to {len(queues)} queues')
    (queue,) = queues
    step = channel.priority(_clamped(channel, envelope.priority))
    return f'{queue}{channel.sep}{step}' if step else str(queue)


def _clamped(channel: Any, priority: int) -> int:
    """The priority kombu's channel takes from a message (``_get_message_priority``)."""
    return int(max(min(priority, channel.max_priority), channel.min_priority))
