"""chunks() in redbeat.schedulers: a small first chunk, then fixed-size ones."""

from __future__ import annotations

import pytest

from redbeat.schedulers import chunks


@pytest.mark.parametrize(
    ('n', 'first', 'size', 'expected_sizes'),
    [
        (0, 100, 5000, []),
        (1, 100, 5000, [1]),
        (100, 100, 5000, [100]),
        (101, 100, 5000, [100, 1]),
        (10, 3, 4, [3, 4, 3]),
        (11, 3, 4, [3, 4, 4]),
        (12, 3, 4, [3, 4, 4, 1]),
        (5, 10, 2, [5]),
        (7, 1, 1, [1] * 7),
    ],
)
def test_chunk_sizes(n: int, first: int, size: int, expected_sizes: list[int]) -> None:
    items = list(range(n))
    parts = list(chunks(items, first, size))
    assert [len(p) for p in parts] == expected_sizes
    # in order, nothing lost, nothing repeated
    assert [x for p in parts for x in p] == items


def test_chunks_of_tuples_keep_their_items() -> None:
    due = [(f'redbeat:e{i}', str(i)) for i in range(5)]
    assert list(chunks(due, 2, 2)) == [due[:2], due[2:4], due[4:]]
