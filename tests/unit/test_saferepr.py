"""redbeat's saferepr and body JSON of decoded arguments are Celery's and kombu's, exactly.

:func:`redbeat.templates.json_saferepr` writes the ``argsrepr`` and
``kwargsrepr`` headers of every rendered message; Celery writes them with
``celery.utils.saferepr.saferepr``.  Any value, limit or nesting depth where
they differ would put a header in a beat message that ``apply_async`` does
not, so both run on generated values: every JSON type, quotes and
backslashes, unicode, nesting past the levels, texts around the length limit.
The body is compared with kombu's ``dumps`` the same way.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from celery.utils.saferepr import saferepr
from hypothesis import given, settings
from hypothesis import strategies as st
from kombu.serialization import dumps as kombu_dumps

from redbeat import templates
from redbeat.templates import json_saferepr

texts = st.text(alphabet=st.sampled_from('ab\'"\\\n\té€😀 {}[],:.'), max_size=12) | st.text(
    max_size=30
)
scalars = st.none() | st.booleans() | st.integers() | st.floats() | texts
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(texts, inner, max_size=5),
    max_leaves=30,
)
#: Arguments as redbeat passes them: a list (or the empty tuple), a dict.
arguments = st.lists(json_values, max_size=6) | st.just(()) | st.tuples(json_values)
limits = st.none() | st.integers(min_value=0, max_value=200)
levels = st.none() | st.integers(min_value=0, max_value=5)


@settings(max_examples=300, deadline=None)
@given(value=arguments | st.dictionaries(texts, json_values, max_size=6), maxlen=limits,
       maxlevels=levels)  # fmt: skip
def test_equals_celery_saferepr(value: Any, maxlen: int | None, maxlevels: int | None) -> None:
    assert json_saferepr(value, maxlen, maxlevels) == saferepr(value, maxlen, maxlevels=maxlevels)


@given(value=json_values)
def test_celery_defaults(value: Any) -> None:
    """The limits Celery uses for the headers by default (1024 characters, 3 levels)."""
    assert json_saferepr([value], 1024, 3) == saferepr([value], 1024, maxlevels=3)
    assert json_saferepr({'k': value}, 1024, 3) == saferepr({'k': value}, 1024, maxlevels=3)


def test_not_json_is_celerys() -> None:
    """Types JSON does not decode to (a set, bytes, a non-str key) take Celery's own path."""
    for value in ({1, 2}, [b'x'], {1: 'one'}, [object]):
        assert json_saferepr(value, 100, 3) == saferepr(value, 100, maxlevels=3)


def test_json_values_do_not_call_celery(monkeypatch: Any) -> None:
    """The equality above is of the fast path: decoded JSON never reaches Celery's saferepr."""

    def refuse(*args: Any, **kwargs: Any) -> str:
        raise AssertionError('Celery saferepr called for a JSON value')

    monkeypatch.setattr(templates, 'saferepr', refuse)
    value = [1, "it's", 2.5, True, None, {'a': [1, {'b': 'c\\d'}]}]
    assert json_saferepr(value, 1024, 3) == "[1, 'it\\'s', 2.5, True, None, {'a': [1, {...}]}]"


@settings(max_examples=200, deadline=None)
@given(value=arguments, kwargs=st.dictionaries(texts, json_values, max_size=4))
def test_body_serialized_as_kombu_serializes_it(value: Any, kwargs: dict[str, Any]) -> None:
    """The message body, encoded by ``json.dumps`` where it can be, is kombu's own text."""
    body = (value, kwargs, {'callbacks': None, 'errbacks': None, 'chain': None, 'chord': None})
    assert templates._serialized(body, 'json') == kombu_dumps(body, serializer='json')


def test_body_json_cannot_encode_is_kombus() -> None:
    """A datetime argument (decoded from a typed value) is encoded by kombu's encoder."""
    body = ([datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)], {}, None)
    assert templates._serialized(body, 'json') == kombu_dumps(body, serializer='json')
    assert '"__type__": "datetime"' in templates._serialized(body, 'json')[2]  # kombu's form
