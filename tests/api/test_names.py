"""The management API's names: ``ScheduleClient`` and ``entries()``, with the names
they had before 3.0 (``Schedule``, ``list``) kept working for code written for them."""

from __future__ import annotations

import pytest
from celery import Celery

import redbeat.api
from redbeat.api import POLICY_FIELDS, PolicyFields, Schedule, ScheduleClient
from redbeat.errors import DefinitionError


def test_the_old_names_are_the_new_objects() -> None:
    assert Schedule is ScheduleClient
    assert Schedule.list is ScheduleClient.entries
    assert {'Schedule', 'ScheduleClient', 'PolicyFields'} <= set(redbeat.api.__all__)


def test_the_policy_keywords_are_the_policy_fields() -> None:
    """``PolicyFields`` types the keywords of ``add``, ``entry``, ``edit`` and the one-offs:
    a field added to the policy and not there would be refused by the type checker."""
    assert set(PolicyFields.__annotations__) == set(POLICY_FIELDS)


def test_entries_and_list_read_the_same(celery_app: Celery) -> None:
    client = ScheduleClient(celery_app)
    client.add('a', 'proj.tasks.a', 60, jitter=5)
    client.add('b', 'proj.tasks.b', 60, enabled=False)

    new = sorted(info.name for info in client.entries())
    old = sorted(info.name for info in Schedule(celery_app).list())

    assert new == old == ['a', 'b']
    assert [i.name for i in client.entries(enabled=False)] == ['b']
    assert client.get('a', history=None).policy.jitter == 5


def test_an_unknown_policy_keyword_names_the_entry(celery_app: Celery) -> None:
    client = ScheduleClient(celery_app)
    with pytest.raises(DefinitionError, match=r"nightly.*unknown policy fields \['jiter'\]"):
        client.add('nightly', 'proj.tasks.report', 60, jiter=5)  # type: ignore[call-arg]
    assert client.names() == []


def test_decoder_is_the_codec_under_celery_redbeats_name() -> None:
    from celery.schedules import crontab

    import redbeat.codec as codec
    import redbeat.decoder as decoder

    assert set(codec.__all__) < set(decoder.__all__)  # and 2.x's get_utcoffset_minutes
    assert all(getattr(codec, name) is getattr(decoder, name) for name in decoder.__all__)
    fields = {'name': 'n', 'task': 'proj.t', 'schedule': crontab(minute=5), 'args': [1],
              'kwargs': {}, 'options': {}, 'enabled': True}  # fmt: skip
    back = codec.decode_definition('redbeat:n', codec.encode_definition(fields))
    assert (back['schedule'], back['args']) == (crontab(minute=5), [1])
