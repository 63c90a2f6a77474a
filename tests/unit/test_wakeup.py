"""How long beat polls the changes channel before a due instant (pure).

As long as possible, yet even a poll that overshoots all it may returns by the deadline.
"""

from __future__ import annotations

import pytest

from redbeat.schedulers import poll_for


@pytest.mark.parametrize('left', [0.0025, 0.01, 0.75, 1.6, 3.3333, 60.0, 300.0])
def test_a_poll_overshooting_all_it_may_ends_at_the_deadline(left: float) -> None:
    timeout = poll_for(left)
    # Python rounds a poll's timeout up to the millisecond; Linux adds up to 0.1 %.
    assert timeout > 0
    assert timeout + timeout * 0.001 + 0.001 == pytest.approx(left, abs=1e-12)


@pytest.mark.parametrize('left', [-1.0, 0.0, 0.0005, 0.0019])
def test_the_last_two_milliseconds_are_slept_not_polled(left: float) -> None:
    assert poll_for(left) == 0.0
