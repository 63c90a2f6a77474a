"""Occurrence task ids: uuid5 of "<key>@<occurrence>", made by hand on the hot path."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from redbeat.publish import OCCURRENCE_NAMESPACE, occurrence_id

MOMENTS = [
    datetime(2026, 1, 1, tzinfo=timezone.utc),
    datetime(2026, 3, 29, 2, 30, 0, 123456, tzinfo=ZoneInfo('Europe/Paris')),
    datetime(1999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-5))),
]


@pytest.mark.parametrize('moment', MOMENTS, ids=str)
@pytest.mark.parametrize('key', ['redbeat:daily', '{redbeat}:élan', 'x' * 300])
def test_occurrence_id_is_uuid5_of_key_and_moment(key: str, moment: datetime) -> None:
    expected = uuid.uuid5(OCCURRENCE_NAMESPACE, f'{key}@{moment.isoformat()}')
    assert occurrence_id(key, moment) == str(expected)
    assert uuid.UUID(occurrence_id(key, moment)).version == 5


def test_occurrence_ids_differ_by_key_and_moment() -> None:
    ids = {occurrence_id(k, m) for k in ('a', 'b') for m in MOMENTS}
    assert len(ids) == 2 * len(MOMENTS)
