"""Celery's own task message, built once per kind of entry and re-stamped per send.

``apply_async`` does much work per message before the broker sees
anything: merging options, routing, assembling headers, repr of the
arguments, serializing (measured in docs/performance.rst).  For a beat
entry all of that is the same every time except the task id.  So the
first time a *kind* is sent (a task name plus its options), Celery builds
the message itself: ``apply_async`` runs
with a producer that records what it would publish instead of publishing.
That recording is the kind's :class:`Template`; later sends copy it and put
in only what differs:

* the task id, wherever the recorded message carried it (``id``,
  ``root_id``, ``correlation_id``);
* the arguments: the body ``(args, kwargs, embed)``, serialized as Celery
  would, and the ``argsrepr``/``kwargsrepr`` headers, made with Celery's
  ``saferepr`` and limits.

A kind is trusted only after it has been *verified*: the second entry of the
kind is recorded by Celery too, and its message must equal the one rendered
from the first.  If it does not (some header depends on the arguments in a
way this module does not know), the kind is *opaque*: each entry is recorded
by Celery once and only its task id is re-stamped afterwards.

Everything else goes through plain ``apply_async`` (:meth:`Templates.send`
returns False): task classes that override ``apply_async`` or
``shadow_name`` (or were wrapped by instrumentation), pydantic tasks,
routing functions (``task_routes`` entries that are not plain mappings could
depend on the arguments), messages with an ``eta`` or ``expires`` (they
depend on the clock), ``task_always_eager``, ``task_send_sent_event``,
protocol 1, and any receiver of ``before_task_publish`` (it may change the
headers it is given, which a recording cannot replay).
``after_task_publish`` and the result backend's ``on_task_call`` run for
every message exactly as Celery runs them; inside a kombu batch the signal
waits for the flush (:attr:`Templates.deferred`), so it never announces a
message the broker does not have.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from celery import Celery, signals
from celery.app.amqp import AMQP
from celery.app.base import Celery as CeleryBase
from celery.app.routes import MapRoute
from celery.app.task import Task
from celery.utils.saferepr import saferepr
from kombu import serialization
from kombu.serialization import dumps
from kombu.utils import json as kombu_json

from . import direct
from .direct import Envelope, NotDirect

logger = logging.getLogger('celery.beat')

#: A kind of entry: its task name and its options (as canonical text).
Kind = tuple[str, str]


class _Recorded(Exception):
    """Raised by :class:`_Recorder` to stop Celery once the message is built."""

    def __init__(self, body: Any, kwargs: dict[str, Any]) -> None:
        super().__init__('recorded')
        self.body = body
        self.kwargs = kwargs


class _Recorder:
    """A producer that records the publish call instead of making it.

    Everything else (connection, channel, serializer) is the real producer's,
    so Celery builds exactly the message it would send through it.
    """

    def __init__(self, producer: Any) -> None:
        self._producer = producer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._producer, name)

    def publish(self, body: Any, **kwargs: Any) -> None:
        raise _Recorded(body, kwargs)


@dataclass
class Template:
    """One recorded message: what ``producer.publish`` was called with."""

    task: str
    body: Any  # (args, kwargs, embed), as Celery passes it to the signals
    kwargs: dict[str, Any]  # producer.publish keyword arguments, headers included
    task_id: str
    #: publish kwargs and headers whose value was the task id
    id_kwargs: tuple[str, ...] = ()
    id_headers: tuple[str, ...] = ()
    #: headers holding a list or dict: each message gets its own copy, as from Celery
    mutable_headers: tuple[str, ...] = ()

    @classmethod
    def recorded(cls, task: str, body: Any, kwargs: dict[str, Any], task_id: str) -> Template:
        headers = kwargs['headers']
        return cls(
            task,
            body,
            kwargs,
            task_id,
            tuple(k for k, v in kwargs.items() if v == task_id),
            tuple(k for k, v in headers.items() if v == task_id),
            tuple(k for k, v in headers.items() if isinstance(v, (list, dict))),
        )

    @property
    def headers(self) -> dict[str, Any]:
        return self.kwargs['headers']  # type: ignore[no-any-return]

    def stamped(self, task_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Fresh publish kwargs and headers for a send with ``task_id``."""
        kwargs = dict(self.kwargs)
        headers = dict(self.headers)
        for name in self.id_kwargs:
            kwargs[name] = task_id
        for name in self.id_headers:
            headers[name] = task_id
        for name in self.mutable_headers:
            value = headers[name]
            headers[name] = list(value) if isinstance(value, list) else dict(value)
        kwargs['headers'] = headers
        return kwargs, headers


@dataclass
class Arguments:
    """The parts of a message that depend on the entry's arguments."""

    body: Any  # (args, kwargs, embed): what the signals get
    argsrepr: str
    kwargsrepr: str
    serialized: dict[str, Any]  # the body serialized, with its content type and encoding
    #: base64 body, argsrepr and kwargsrepr as JSON text, for direct pushes (made once)
    pushed: tuple[str, str, str] | None = None

    def pushed_values(self) -> tuple[str, str, str]:
        """The body (base64, as kombu's Redis transport stores it) and reprs, as JSON text."""
        if self.pushed is None:
            serialized = self.serialized
            body = direct.encode_body(serialized['serialized'], serialized['content_encoding'])
            self.pushed = (json.dumps(body), json.dumps(self.argsrepr), json.dumps(self.kwargsrepr))
        return self.pushed


#: Entries whose rendered arguments are kept (cleared when full, like decoded definitions).
ARGUMENTS_CACHE_MAX = 200_000


@dataclass
class _KindState:
    slow: bool = False  # sent through apply_async (unsupported task, or eta/expires)
    first: Template | None = None  # the first entry's recording
    verified: bool = False  # a second entry rendered from ``first`` equalled Celery's
    opaque: bool = False  # it did not: each entry keeps its own recording
    #: entry key -> (its definition fields, its recording), for opaque kinds
    entries: dict[str, tuple[Mapping[str, Any], Template]] = field(default_factory=dict)
    #: kombu's Redis LPUSH of one rendered message, cut at its per-message values
    envelope: Envelope | None = None
    #: kombu pushed a second message exactly as the envelope renders it: push directly
    direct: bool = False
    no_direct: bool = False  # something here is not modelled: always through kombu


def _plain(method: Any, original: Any) -> bool:
    """True if ``method`` is Celery's own ``original``, not overridden or wrapped."""
    return method is original and not hasattr(method, '__wrapped__')


class Templates:
    """Sends messages from templates where that gives exactly Celery's message."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self._kinds: dict[Kind, _KindState] = {}
        self._arguments: dict[str, tuple[Mapping[str, Any], Arguments]] = {}
        self._states: dict[int, tuple[Mapping[str, Any], _KindState]] = {}
        self.app_supported = self._app_supported()
        #: How messages went: recorded by Celery, rendered from a kind's template,
        #: replayed from an entry's own recording, or handed to apply_async.
        self.counts: Counter[str] = Counter()
        #: While a batch is open: ``after_task_publish`` arguments, to be sent
        #: once the batch is flushed (the signal means "the broker has it").
        self.deferred: list[dict[str, Any]] | None = None
        #: While a direct group is open: (envelope, text) to LPUSH, in order.
        self.pushes: list[tuple[Envelope, str]] | None = None
        # Celery < 5.7 (the last on Python 3.9) has no such setting: its depth was 3.
        self._levels: int | None = app.conf.get('task_repr_maxlevels', 3)

    def _app_supported(self) -> bool:
        app, conf = self.app, self.app.conf
        amqp = app.amqp
        return bool(
            not conf.task_always_eager
            and not conf.task_send_sent_event
            and int(conf.task_protocol or 2) == 2
            and _plain(type(app).send_task, CeleryBase.send_task)
            and _plain(type(amqp).as_task_v2, AMQP.as_task_v2)
            and _plain(type(amqp)._create_task_sender, AMQP._create_task_sender)
            and all(isinstance(route, MapRoute) for route in amqp.routes)
        )

    def usable(self) -> bool:
        """True unless the app is unsupported or someone listens to ``before_task_publish``."""
        # Read once per send, not per message (Celery's conf lookup is slow).
        self._levels = self.app.conf.get('task_repr_maxlevels', 3)
        return (
            self.app_supported
            and not signals.before_task_publish.receivers
            and not signals.task_sent.receivers
        )

    def _task_supported(self, name: str) -> bool:
        task = self.app.tasks.get(name)
        if task is None:
            return True  # sent by name with send_task
        kind = type(task)
        return (
            _plain(kind.apply_async, Task.apply_async)
            and _plain(kind.shadow_name, Task.shadow_name)
            and getattr(task, '_dump_pydantic_arguments', None) is None
        )

    def _state(self, fields: Mapping[str, Any]) -> _KindState:
        # Definitions are decoded once and kept (the planner's cache): the same
        # fields object is asked about at every send, its kind worked out once.
        known = self._states.get(id(fields))
        if known is not None and known[0] is fields:
            return known[1]
        name = fields['task']
        kind = (name, _canonical(fields['options']))
        state = self._kinds.get(kind)
        if state is None:
            state = self._kinds[kind] = _KindState(slow=not self._task_supported(name))
        if len(self._states) >= ARGUMENTS_CACHE_MAX:
            self._states.clear()
        self._states[id(fields)] = (fields, state)  # holds fields: its id is not reused
        return state

    def batchable(self, fields: Mapping[str, Any]) -> bool:
        """True unless the entry's kind is known to go through ``apply_async``."""
        return not self._state(fields).slow

    def refuse_direct(self, envelopes: set[Envelope], reason: Exception) -> None:
        """Send the kinds of ``envelopes`` through kombu from now on."""
        for state in self._kinds.values():
            if state.envelope in envelopes:
                state.direct, state.no_direct, state.envelope = False, True, None
                logger.info('beat: messages of %s are sent through kombu from now on: %s',
                            state.first.task if state.first else '?', reason)  # fmt: skip

    def pushable(self, fields: Mapping[str, Any]) -> bool:
        """True if the entry's kind is verified for direct pushes (see :mod:`redbeat.direct`)."""
        state = self._state(fields)
        return state.direct and state.verified and not state.slow

    def send(self, fields: Mapping[str, Any], key: str, options: dict[str, Any],
             producer: Any) -> bool:  # fmt: skip
        """Send one occurrence; False if it must go through ``apply_async`` instead.

        ``options`` are the keyword arguments ``apply_async`` would get: the
        entry's options with beat's header and the ``task_id`` added.
        """
        name = fields['task']
        state = self._state(fields)
        if state.slow:
            self.counts['apply_async'] += 1
            return False
        task_id = options['task_id']
        if state.verified:
            if self.pushes is not None and state.direct:
                self.push(fields, key, task_id, producer)
                return True
            args, kwargs, headers = self._stamped(state, key, fields, task_id)
            self._publish(producer, name, kwargs, headers, check=(state, args))
            self.counts['rendered'] += 1
            return True
        known = state.entries.get(key)
        if known is not None and known[0] is fields:
            kwargs, headers = known[1].stamped(task_id)
            kwargs['body'] = known[1].body
            self._publish(producer, name, kwargs, headers)
            self.counts['replayed'] += 1
            return True
        template = self._record(fields, options, producer)
        kwargs, headers = template.stamped(task_id)
        kwargs['body'] = template.body
        self._publish(producer, name, kwargs, headers, backend_told=True)
        self.counts['recorded'] += 1
        if headers.get('eta') is not None or headers.get('expires') is not None:
            state.slow = True  # depends on the clock: apply_async from now on
        else:
            self._learn(state, key, fields, template)
        return True

    def push(self, fields: Mapping[str, Any], key: str, task_id: str, producer: Any) -> None:
        """Queue one message of a :meth:`pushable` kind for the open direct group."""
        state = self._state(fields)
        args, kwargs, headers = self._stamped(state, key, fields, task_id)
        self._push(producer, state, fields['task'], kwargs, headers, args)
        self.counts['pushed'] += 1

    def _stamped(
        self, state: _KindState, key: str, fields: Mapping[str, Any], task_id: str
    ) -> tuple[Arguments, dict[str, Any], dict[str, Any]]:
        """A verified kind's publish kwargs and headers for this entry and task id."""
        assert state.first is not None
        args = self._rendered(state.first, key, fields)
        kwargs, headers = state.first.stamped(task_id)
        headers['argsrepr'], headers['kwargsrepr'] = args.argsrepr, args.kwargsrepr
        kwargs['body'] = args.body
        kwargs.update(args.serialized)
        return args, kwargs, headers

    def _learn(self, state: _KindState, key: str, fields: Mapping[str, Any],
               template: Template) -> None:  # fmt: skip
        """Keep a kind's first recording, or verify the kind with a second one."""
        if state.first is None:
            state.first = template
        elif not state.opaque:
            args = self._render(state.first, fields)
            rendered, headers = state.first.stamped(template.task_id)
            headers['argsrepr'], headers['kwargsrepr'] = args.argsrepr, args.kwargsrepr
            state.verified = args.body == template.body and _same(rendered, template.kwargs)
            state.opaque = not state.verified
            if state.opaque:
                logger.debug('beat: messages of %s are not templated: they depend on '
                             'the arguments in an unknown way', template.task)  # fmt: skip
        if state.opaque:
            state.entries[key] = (fields, template)

    def _record(
        self, fields: Mapping[str, Any], options: dict[str, Any], producer: Any
    ) -> Template:
        """Have Celery build the message: everything apply_async runs, but the publish."""
        name = fields['task']
        recorder = _Recorder(producer)
        task = self.app.tasks.get(name)
        try:
            if task is not None:
                task.apply_async(fields['args'], fields['kwargs'], producer=recorder, **options)
            else:
                self.app.send_task(
                    name, fields['args'], fields['kwargs'], producer=recorder, **options
                )
        except _Recorded as recorded:
            return Template.recorded(name, recorded.body, recorded.kwargs, options['task_id'])
        raise RuntimeError(f'Celery did not publish {name!r} through the producer it was given')

    def _rendered(self, template: Template, key: str, fields: Mapping[str, Any]) -> Arguments:
        """The entry's :class:`Arguments`, made once per definition (kept across ticks)."""
        cached = self._arguments.get(key)
        if cached is not None and cached[0] is fields:
            return cached[1]
        if len(self._arguments) >= ARGUMENTS_CACHE_MAX:
            self._arguments.clear()
        made = self._render(template, fields)
        self._arguments[key] = (fields, made)
        return made

    def _render(self, template: Template, fields: Mapping[str, Any]) -> Arguments:
        """What Celery makes of the entry's arguments (checked first, as apply_async does)."""
        task = self.app.tasks.get(fields['task'])
        if task is not None and task.typing:  # TypeError, as in apply_async
            task.__header__(*(fields['args'] or ()), **(fields['kwargs'] or {}))
        args, kwargs = fields['args'] or (), fields['kwargs'] or {}  # as Celery's as_task_v2
        if not isinstance(args, (list, tuple)) or not isinstance(kwargs, Mapping):
            raise TypeError('task args must be a list or tuple, keyword arguments a mapping')
        amqp, levels = self.app.amqp, self._levels
        body = (args, kwargs, template.body[2])
        serializer = template.kwargs['serializer']
        content_type, encoding, data = _serialized(body, serializer)
        return Arguments(
            body,
            json_saferepr(args, amqp.argsrepr_maxsize, levels),
            json_saferepr(kwargs, amqp.kwargsrepr_maxsize, levels),
            {'content_type': content_type, 'content_encoding': encoding, 'serialized': data},
        )

    def _to_declare(self, producer: Any, entities: Any) -> list[Any]:
        """The entities kombu would still declare: none once this connection declared them.

        kombu's ``maybe_declare`` skips an entity already in the connection's
        ``declared_entities``, but only after copying it and entering a retry
        wrapper, on every publish; this checks the same cache first.
        """
        if not entities:
            return []
        declared = producer.connection.declared_entities
        return [e for e in entities if not (e.can_cache_declaration and hash(e) in declared)]

    def _publish(
        self,
        producer: Any,
        name: str,
        kwargs: dict[str, Any],
        headers: dict[str, Any],
        backend_told: bool = False,
        check: tuple[_KindState, Arguments] | None = None,
    ) -> None:
        """What Celery does once the message is built: backend hook, publish, signal.

        ``backend_told``: Celery ran the result backend's hook while recording.
        ``check``: a rendered message, whose kind may still learn or verify its
        envelope from what kombu pushes.
        """
        if not backend_told and not headers.get('ignore_result'):
            self.app.backend.on_task_call(producer, headers['id'])
        kwargs['declare'] = self._to_declare(producer, kwargs.get('declare'))
        body = kwargs.pop('body')
        data = kwargs.pop('serialized', body)  # serialized already: kombu leaves it alone
        learning = check is not None and not (check[0].direct or check[0].no_direct)
        pipeline = direct.batch_pipeline(producer) if learning else None
        before = len(pipeline.command_stack) if pipeline is not None else 0
        producer.publish(data, **kwargs)
        if check is not None and learning:
            pipeline = direct.batch_pipeline(producer)
            if pipeline is not None:  # in a kombu batch: what kombu pushed is readable
                self._learn_envelope(producer, *check, kwargs, headers,
                                     pipeline.command_stack[before:])  # fmt: skip
        self._signal(name, body, headers, kwargs)

    def _push(
        self,
        producer: Any,
        state: _KindState,
        name: str,
        kwargs: dict[str, Any],
        headers: dict[str, Any],
        args: Arguments,
    ) -> None:
        """Queue a rendered message for the open direct group (Celery's steps, kombu's text)."""
        assert self.pushes is not None and state.envelope is not None
        if self._to_declare(producer, kwargs.get('declare')):
            raise NotDirect('a queue to declare on this connection')  # kombu declares it
        if not headers.get('ignore_result'):
            self.app.backend.on_task_call(producer, headers['id'])
        body, argsrepr, kwargsrepr = args.pushed_values()
        encoded = (json.dumps(headers['id']), json.dumps(direct.new_tag()), body, argsrepr,
                   kwargsrepr)  # fmt: skip
        self.pushes.append((state.envelope, state.envelope.render_encoded(encoded)))
        self._signal(name, kwargs.pop('body'), headers, kwargs)

    def _learn_envelope(
        self,
        producer: Any,
        state: _KindState,
        args: Arguments,
        kwargs: dict[str, Any],
        headers: dict[str, Any],
        commands: list[Any],
    ) -> None:
        """Cut the kind's envelope from kombu's push, or verify it against a second push."""
        try:
            channel = direct.channel_of(producer)
            exchange, routing_key = kwargs.get('exchange'), kwargs.get('routing_key')
            if channel is None or kwargs.get('compression') or len(commands) != 1:
                raise NotDirect('not a plain Redis channel, compressed, or not one LPUSH')
            if not isinstance(exchange, str) or not isinstance(routing_key, str):
                raise NotDirect('exchange or routing key given as an object')
            command = commands[0][0]
            if len(command) != 3 or str(command[0]).upper() != 'LPUSH':
                raise NotDirect(f'kombu sent {command[0]!r}, not LPUSH')
            key, payload = direct.text(command[1]), direct.text(command[2])
            tag, body = direct.values_of(payload)
            pushed = args.pushed_values()
            if json.dumps(body) != pushed[0]:
                raise NotDirect('the body kombu pushed is not the one rendered')
            values = (headers['id'], tag, body, args.argsrepr, args.kwargsrepr)
            if state.envelope is None:
                state.envelope = Envelope.cut(payload, values, exchange, routing_key)
                return
            envelope = state.envelope
            if envelope.render(values) != payload or (exchange, routing_key) != (
                envelope.exchange,
                envelope.routing_key,
            ):
                raise NotDirect('a second message of the kind differs from its envelope')
            with channel.conn_or_acquire() as client:
                tables = direct.lookup_tables(client, channel, {exchange} - {''})
            if direct.queue_key(channel, envelope, tables) != key:
                raise NotDirect(f'kombu pushed onto {key!r}, not where the envelope goes')
            state.direct = True
            logger.info("beat: messages of %s are now pushed to the broker directly (kombu's "
                        'own text, verified on two of its messages)', headers['task'])  # fmt: skip
        except (NotDirect, ValueError, KeyError, TypeError) as exc:
            state.no_direct, state.envelope = True, None
            logger.info('beat: messages of %s are sent through kombu, not pushed directly: %s',
                        headers.get('task'), exc)  # fmt: skip

    def _signal(
        self, name: str, body: Any, headers: dict[str, Any], kwargs: dict[str, Any]
    ) -> None:
        """``after_task_publish``, now or once the open batch is in the broker."""
        signalled = {
            'sender': name, 'body': body, 'headers': headers,
            'exchange': kwargs['exchange'], 'routing_key': kwargs['routing_key'],
        }  # fmt: skip
        if self.deferred is not None:
            self.deferred.append(signalled)
        else:
            signals.after_task_publish.send(**signalled)


def _serialized(body: Any, serializer: str | None) -> tuple[str, str, Any]:
    """kombu's ``dumps(body, serializer=serializer)``: content type, encoding, data.

    kombu's json serializer is ``json.dumps`` with an encoder class whose only
    addition is ``default``, for types JSON has not (datetimes, UUIDs...);
    building that encoder per message costs more than the encoding.  While
    'json' is still kombu's own, a body ``json.dumps`` can encode without
    ``default`` is encoded so, which is the same text; anything else (a
    datetime argument, another serializer) is kombu's.
    """
    if serializer == 'json':
        codec = getattr(serialization.registry, '_encoders', {}).get('json')
        if codec is not None and codec.encoder is kombu_json.dumps:
            try:
                return codec.content_type, codec.content_encoding, json.dumps(body)
            except (TypeError, ValueError):
                pass
    return dumps(body, serializer=serializer)  # type: ignore[no-untyped-call,no-any-return]


def json_saferepr(value: Any, maxlen: int | None, maxlevels: int | None) -> str:
    """Celery's ``saferepr(value, maxlen, maxlevels=maxlevels)``, faster for decoded JSON.

    Celery's streams tokens through generators to truncate at ``maxlen``.  A
    value made only of what JSON decodes to (str keys, no subclasses) whose
    text is shorter than ``maxlen`` is never truncated, and its text is
    written here directly, by Celery's rules: strings quoted with ``'`` and
    only ``'`` escaped, numbers by ``str``, containers below ``maxlevels``
    shown as ``[...]``.  Anything else is Celery's own (tests/unit/test_saferepr.py
    checks both agree on generated values).
    """
    out: list[str] = []
    if _json_repr(value, maxlevels or 0, 0, out):
        text = ''.join(out)
        if maxlen is None or len(text) < maxlen:
            return text
    return str(saferepr(value, maxlen, maxlevels=maxlevels))


_BRACKETS: dict[type, tuple[str, str]] = {list: ('[', ']'), tuple: ('(', ')'), dict: ('{', '}')}


def _json_repr(value: Any, maxlevels: int, level: int, out: list[str]) -> bool:
    kind = type(value)
    if kind is str:
        out.append("'" + value.replace("'", "\\'") + "'")
    elif kind is int or kind is float or kind is bool:
        out.append(str(value))
    elif value is None:
        out.append('None')
    elif kind is list or kind is tuple or kind is dict:
        opening, closing = _BRACKETS[kind]
        if maxlevels and level >= maxlevels:
            out.append(opening + '...' + closing)
            return True
        out.append(opening)
        if kind is dict:
            for i, (key, item) in enumerate(value.items()):
                if type(key) is not str:
                    return False
                if i:
                    out.append(', ')
                out.append("'" + key.replace("'", "\\'") + "': ")
                if not _json_repr(item, maxlevels, level + 1, out):
                    return False
        else:
            for i, item in enumerate(value):
                if i:
                    out.append(', ')
                if not _json_repr(item, maxlevels, level + 1, out):
                    return False
            if kind is tuple and len(value) == 1:
                closing = ',)'
        out.append(closing)
    else:
        return False
    return True


def _canonical(options: Mapping[str, Any]) -> str:
    """The options as text, for the kind (JSON-decoded values: repr is enough)."""
    return repr(sorted(options.items()))


def _same(rendered: dict[str, Any], recorded: dict[str, Any]) -> bool:
    """Equal publish kwargs (entities to declare compared by what they declare)."""

    def plain(kwargs: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in kwargs.items() if k != 'declare'}

    def declared(kwargs: dict[str, Any]) -> list[str]:
        return [repr(entity) for entity in kwargs.get('declare') or ()]

    return plain(rendered) == plain(recorded) and declared(rendered) == declared(recorded)
