"""``stop_signals_held``: SIGTERM/SIGINT wait for the end of the outermost hold."""

from __future__ import annotations

import os
import signal
from typing import Any

from redbeat.publish import stop_signals_held


def test_a_stop_in_a_nested_hold_waits_for_the_outer_one() -> None:
    """A group's claim and send hold the stop signals, and so does its flush inside:
    a SIGTERM landing in the flush is handled once the whole group is done, and the
    handler in place before is back afterwards."""
    delivered: list[str] = []

    def handler(signum: int, frame: Any) -> None:
        delivered.append('handled')

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        with stop_signals_held():
            delivered.append('claimed')
            with stop_signals_held():
                os.kill(os.getpid(), signal.SIGTERM)
                delivered.append('flushed')
            delivered.append('signals sent')
        delivered.append('after')
        assert delivered == ['claimed', 'flushed', 'signals sent', 'handled', 'after']
        assert signal.getsignal(signal.SIGTERM) is handler
        with stop_signals_held():  # held again: a new hold works as the first did
            os.kill(os.getpid(), signal.SIGTERM)
            delivered.append('second group')
        assert delivered[-2:] == ['second group', 'handled']
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_nested_hold_swaps_no_handlers(monkeypatch: Any) -> None:
    """Held already, an inner hold costs nothing (four handler swaps a group saved)."""
    swaps: list[int] = []
    real = signal.signal

    def counted(signum: int, handler: Any) -> Any:
        swaps.append(signum)
        return real(signum, handler)

    monkeypatch.setattr(signal, 'signal', counted)
    with stop_signals_held():
        outer = len(swaps)
        with stop_signals_held():
            assert len(swaps) == outer
    assert outer == 2 and len(swaps) == 4  # held and given back, once each
