"""Planning alone: what redbeat's planner costs per due entry, without Redis or a broker.

``python bench/planning.py [--n 10000] [--rounds 5] [--scenarios tick,day,years,mix]``

Builds the rows ``store.due`` would return for the benchmark's scenarios
(``bench/scenarios.py``: ``tick`` every hour, due now; ``burst`` the lateness
bench's ``rrule('SECONDLY', interval=10)`` entries, all due at one instant; ``day`` and ``years``
every minute, last run a day ago or on 2000-01-01; ``mix`` a third each of
intervals, ``crontab(minute='*')`` and hourly rrules with per-entry zones,
a day overdue), each entry with a run state of its own (distinct meta text),
and times :meth:`redbeat.planner.Planner.plan` over all of them with a new
planner (nothing cached: a first tick after start), then again with the same
planner (definitions and schedules known).  CPU time of this process, the
best of ``--rounds``: other work on the machine disturbs it less than wall
time.  Prints µs per entry.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from celery.schedules import BaseSchedule, crontab, schedule

from redbeat.codec import encode_definition, encode_meta
from redbeat.planner import Planner
from redbeat.policy import Policy
from redbeat.schedules import rrule
from redbeat.store import Row

ZONES = ('Europe/Paris', 'America/New_York', 'Asia/Kolkata', 'Australia/Sydney')


def rows(scenario: str, n: int, now: datetime) -> list[tuple[str, str, Row]]:
    """(member, score, row) of ``n`` due entries, as the scenario stores them."""
    # burst: the lateness bench's entries, rrule every 10 s from 200 s ago, due at the
    # grid instant just passed (the 21st burst), last run at the one before.
    grid = now.replace(microsecond=0) - timedelta(seconds=now.second % 10)
    last = {
        'burst': grid - timedelta(seconds=10),
        'tick': now - timedelta(hours=2),
        'day': now - timedelta(days=1),
        'years': datetime(2000, 1, 1, tzinfo=timezone.utc),
        'mix': now - timedelta(days=1),
    }[scenario]
    out = []
    for i in range(n):
        policy = None
        sched: BaseSchedule
        if scenario == 'tick':
            sched = schedule(timedelta(seconds=3600))
        elif scenario == 'burst':
            sched = rrule('SECONDLY', interval=10, dtstart=grid - timedelta(seconds=200))
        elif scenario != 'mix' or i % 3 == 0:
            sched = schedule(timedelta(seconds=60))
        else:
            policy = Policy(timezone=ZONES[i % 4]).to_json()
            if i % 3 == 1:
                sched = crontab(minute='*')
            else:
                start = (now - timedelta(days=3)).replace(minute=i % 60, second=0, microsecond=0)
                sched = rrule('HOURLY', dtstart=start)
        key = f'redbeat:bench-{i:06d}'
        fields: dict[str, Any] = {'name': key[8:], 'task': 'bench.noop', 'schedule': sched}
        definition = encode_definition({**fields, 'args': [i]})
        meta = encode_meta(last + timedelta(microseconds=i), 0)  # a run state of its own
        score = {'tick': '0', 'burst': repr(grid.timestamp())}.get(
            scenario, repr(last.timestamp() + 60)
        )
        out.append((key, score, Row(key, definition, meta, None, policy)))
    return out


def measure(scenario: str, n: int, rounds: int) -> tuple[float, float]:
    """Best CPU seconds per entry: a new planner, then the same one again."""
    now = datetime.now(timezone.utc)
    due = rows(scenario, n, now)
    cold = warm = float('inf')
    for _ in range(rounds):
        planner = Planner(timezone.utc, Policy(), 300)
        for attempt in ('cold', 'warm'):
            gc.collect()
            start = time.process_time()
            plans = [planner.plan(member, score, row, now, now) for member, score, row in due]
            spent = (time.process_time() - start) / n
            if any(plan.problem or len(plan.messages) != 1 for plan in plans):
                sys.exit(f'{scenario}: an entry was not planned to be sent once')
            if attempt == 'cold':
                cold = min(cold, spent)
            else:
                warm = min(warm, spent)
    return cold, warm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--n', type=int, default=10_000)
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--scenarios', default='tick,day,years,mix')
    args = parser.parse_args()
    print('scenario  first tick (new planner)  again (same planner)   per due entry, CPU')
    for scenario in args.scenarios.split(','):
        cold, warm = measure(scenario, args.n, args.rounds)
        print(f'{scenario:8s}  {cold * 1e6:20.1f} µs  {warm * 1e6:17.1f} µs')


if __name__ == '__main__':
    main()
