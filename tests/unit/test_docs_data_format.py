"""docs/data-format.rst: its JSON examples, verbatim, read as it says; the compact
ones are exactly what redbeat writes for the full ones beside them."""

from __future__ import annotations

import json
import re
import textwrap
from typing import Any

from redbeat.codec import (
    RedBeatJSONDecoder,
    decode_definition,
    decode_meta,
    dumps,
    encode_definition,
    encode_meta,
)
from tests.docs import DOCS
from tests.unit.test_codec import legacy_load

KEY = 'redbeat:nightly'


def json_blocks() -> list[str]:
    """Every ``code-block:: json`` body of the page, indented ones (in definition lists) too."""
    text = (DOCS / 'data-format.rst').read_text()
    pattern = r'^( *)\.\. code-block:: json\n\n((?:\1 +.*\n|\n)+)'
    return [textwrap.dedent(m.group(2)).strip() for m in re.finditer(pattern, text, flags=re.M)]


def block(prefix: str, nth: int = 0) -> str:
    """The ``nth`` JSON example starting with ``prefix``."""
    return [b for b in json_blocks() if b.startswith(prefix)][nth]


def test_every_json_example_parses_and_its_typed_values_build() -> None:
    examples = json_blocks()
    assert len(examples) >= 12
    for text in examples:
        raw = json.loads(text)
        if 'name' in raw:  # a definition, the flat layout too
            decode_definition(KEY, text)
        elif 'last_run_at' in raw:
            decode_meta(KEY, text)
        elif '__type__' in raw:  # a lone typed value is built
            value: Any = json.loads(text, cls=RedBeatJSONDecoder)
            assert not isinstance(value, dict), text


def test_the_compact_definition_is_what_redbeat_writes_for_the_full_one() -> None:
    full, compact = block('{"name": "nightly"'), block('{"name":"nightly"')
    fields = decode_definition(KEY, full)
    assert decode_definition(KEY, compact) == fields
    assert encode_definition(fields) == compact
    assert json.loads(encode_definition(fields, full=True)) == json.loads(full)
    # celery-redbeat 2.x (its reader, step for step) makes the same entry of either
    meta = block('{"last_run_at": {')
    assert vars(legacy_load(compact, meta)) == vars(legacy_load(full, meta))


def test_the_compact_metas_are_what_redbeat_writes() -> None:
    full = block('{"last_run_at": {')
    ran, never = block('{"last_run_at":{', 0), block('{"last_run_at":{', 1)
    last_run_at, count = decode_meta(KEY, full)
    assert (last_run_at, count) == decode_meta(KEY, ran)
    assert count == 23 and encode_meta(last_run_at, count) == ran
    assert encode_meta(last_run_at, 0) == never and decode_meta(KEY, never) == (last_run_at, 0)


def test_the_compact_datetime_is_what_redbeat_writes() -> None:
    full, compact = block('{"__type__": "datetime"'), block('{"__type__":"datetime"')
    moment = json.loads(full, cls=RedBeatJSONDecoder)
    assert json.loads(compact, cls=RedBeatJSONDecoder) == moment
    assert dumps(moment) == compact
