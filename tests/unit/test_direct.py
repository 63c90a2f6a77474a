"""The pieces of redbeat.direct that need no broker: envelopes, tags, grouping by list."""

from __future__ import annotations

import json
import uuid

import pytest

from redbeat import direct

TASK_ID = '3b1f0c9e-5d1a-5b7e-9c3d-0a1b2c3d4e5f'
TAG = 'd2f1c0a4-1b2c-4d3e-8f4a-5b6c7d8e9f00'


def kombu_text(task_id: str, tag: str, body: str, argsrepr: str, kwargsrepr: str) -> str:
    """A message as kombu's Redis transport writes it (keys in kombu's order)."""
    return direct.kombu_dumps({
        'body': body, 'content-encoding': 'utf-8', 'content-type': 'application/json',
        'headers': {'task': 't', 'id': task_id, 'root_id': task_id, 'parent_id': None,
                    'argsrepr': argsrepr, 'kwargsrepr': kwargsrepr, 'note': 'it\'s "x" é'},
        'properties': {'correlation_id': task_id, 'priority': 0, 'body_encoding': 'base64',
                       'delivery_info': {'exchange': '', 'routing_key': 'celery'},
                       'delivery_tag': tag},
    })  # fmt: skip


def test_envelope_gives_back_kombus_text_and_renders_other_values() -> None:
    values = (TASK_ID, TAG, 'W1tdLCB7fV0=', '[]', '{}')
    envelope = direct.Envelope.cut(kombu_text(*values), values, '', 'celery')
    assert envelope.render(values) == kombu_text(*values)
    other = (str(uuid.uuid4()), direct.new_tag(), 'W1sxXSwge31d', "['a\\'b']", "{'k': 'é'}")
    assert envelope.render(other) == kombu_text(*other)
    assert json.loads(envelope.render(other))['headers']['root_id'] == other[0]


def test_envelope_refuses_text_it_cannot_give_back() -> None:
    """kombu writing JSON another way (here: compact separators) is not modelled."""
    values = (TASK_ID, TAG, 'W1tdLCB7fV0=', '[]', '{}')
    compact = json.dumps(json.loads(kombu_text(*values)), separators=(',', ':'))
    with pytest.raises(direct.NotDirect):
        direct.Envelope.cut(compact, values, '', 'celery')


def test_tags_are_uuid4_text() -> None:
    tags = {direct.new_tag() for _ in range(200)}
    assert len(tags) == 200
    for tag in tags:
        parsed = uuid.UUID(tag)
        assert str(parsed) == tag and parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_pushes_grouped_by_list_keep_their_order() -> None:
    keyed = [('a', '1'), ('b', '2'), ('a', '3'), ('a', '4'), ('b', '5')]
    assert direct.by_key(keyed) == {'a': ['1', '3', '4'], 'b': ['2', '5']}
