"""planner: rows and ``now`` in, plans and writes out (tables, no Redis, no clock)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from celery.schedules import schedule

from redbeat import timing
from redbeat.codec import decode_meta, encode_definition, encode_meta
from redbeat.keys import Keys
from redbeat.planner import Plan, Planner, claim_groups, journaled, queue_finish, record
from redbeat.policy import Policy
from redbeat.publish import Message, Outcome
from redbeat.store import Row, Writes

UTC = timezone.utc
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
KEYS = Keys('redbeat:')
PARK_FOR = 300.0


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def row(
    *,
    enabled: bool = True,
    last: float | None = 0.0,
    count: int = 1,
    policy: dict[str, object] | None = None,
    definition: str | None = None,
) -> Row:
    text = definition or encode_definition({
        'name': 'job', 'task': 'proj.job', 'schedule': schedule(timedelta(seconds=60)),
        'args': [], 'kwargs': {}, 'options': {}, 'enabled': enabled,
    })  # fmt: skip
    meta = None if last is None else encode_meta(at(last), count)
    return Row(KEYS.entry('job'), text, meta, policy=None if policy is None else json.dumps(policy))


def plan(r: Row, score: float, now: float) -> Plan:
    planner = Planner(UTC, Policy(), PARK_FOR)
    return planner.plan(KEYS.entry('job'), repr(timing.to_score(at(score))), r, at(now))


#: (row, score, now) -> (occurrences sent, new score, runs recorded, finish action)
TABLE = [
    # on time: the occurrence at +60 goes, the next is due at +120
    (row(), 60, 60.5, [60], 120, 2, None),
    # three missed, default policy: the latest is sent once, recorded as run now (+200),
    # and an interval's next run is one period after that
    (row(), 60, 200, [180], 260, 2, None),
    # missed='all': every missed occurrence goes
    (row(policy={'missed': 'all'}), 60, 200, [60, 120, 180], 240, 4, None),
    # missed='skip' past the catch-up window: none goes, next after now
    (row(policy={'missed': 'skip', 'catchup_window': 10}), 60, 200, [], 240, 1, None),
    # the last allowed run: sent, then finished (disabled)
    (row(policy={'max_runs': 2, 'on_finish': 'disable'}), 60, 60.5, [60], None, 2, 'disable'),
]


@pytest.mark.parametrize(('r', 'score', 'now', 'sends', 'following', 'runs', 'finish'), TABLE)
def test_plans(
    r: Row,
    score: float,
    now: float,
    sends: list[float],
    following: float | None,
    runs: int,
    finish: str | None,
) -> None:
    p = plan(r, score, now)

    assert [m.occurrence for m in p.messages] == [at(s) for s in sends]
    expected = timing.NEVER if following is None else timing.to_score(at(following))
    assert p.claim.score == expected
    assert p.claim.meta is not None and decode_meta('k', p.claim.meta)[1] == runs
    assert p.claim.expected == repr(timing.to_score(at(score)))  # conditional on what was read
    assert (p.restore.score, p.restore.meta) == (p.claim.expected, r.meta)  # the undo
    assert p.finish == finish and p.problem is None


#: (row, score, now) -> (parked until, finish action, why)
PARKED = [
    (row(enabled=False), 60, 61, timing.NEVER, None, None),
    # its definition moved its next run later (by hand): moved to that time, nothing sent
    (row(last=100), 60, 61, timing.to_score(at(160)), None, None),
    # no run left: parked for good, finished as its policy says
    (row(policy={'max_runs': 1, 'on_finish': 'delete'}), 60, 61, timing.NEVER, 'delete', None),
    # unreadable: looked at again after PARK_FOR, its data untouched, the reason said
    (row(definition='{"name": "job"'), 60, 61, timing.to_score(at(61 + PARK_FOR)), None,
     'definition'),
    (row(policy={'jitter': -1}), 60, 61, timing.to_score(at(61 + PARK_FOR)), None, 'jitter'),
]  # fmt: skip


@pytest.mark.parametrize(('r', 'score', 'now', 'until', 'finish', 'why'), PARKED)
def test_parks(
    r: Row, score: float, now: float, until: float, finish: str | None, why: str | None
) -> None:
    p = plan(r, score, now)

    assert p.messages == ()
    assert p.claim.score == until and p.claim.meta is None  # the run state is left alone
    assert p.finish == finish
    if why is None:
        assert p.problem is None
    else:
        assert p.problem is not None and why in p.problem


def test_a_planner_decodes_each_text_once() -> None:
    planner = Planner(UTC, Policy(), PARK_FOR)
    r = row()
    first = planner.plan(KEYS.entry('job'), repr(timing.to_score(at(60))), r, at(61))
    again = planner.plan(KEYS.entry('job'), repr(timing.to_score(at(60))), r, at(61))
    assert first.fields is again.fields  # the cached decoded definition


def test_claim_groups_split_by_messages() -> None:
    plans = [plan(row(policy={'missed': 'all'}), 60, 200), plan(row(), 60, 61), plan(row(), 60, 61)]
    assert [len(g) for g in claim_groups(plans, 3)] == [1, 2]  # 3 messages, then 1 + 1


def test_journaled_records_each_occurrence_with_the_definition_read() -> None:
    r = row(policy={'missed': 'all'})
    p = journaled(plan(r, 60, 200), r)
    assert [task_id for task_id, _ in p.claim.journal] == [m.task_id for m in p.messages]
    assert {json.loads(text)['definition'] for _, text in p.claim.journal} == {r.definition}
    assert p.restore.journal == tuple(m.task_id for m in p.messages)


def test_record_writes_history_by_outcome_and_finishes_only_what_was_sent() -> None:
    done = plan(row(policy={'max_runs': 2, 'on_finish': 'delete', 'history': 5}), 60, 60.5)
    failed = plan(row(policy={'max_runs': 2, 'on_finish': 'disable', 'history': 5}), 60, 60.5)
    messages = [*done.messages, *failed.messages]
    writes = Writes()

    record(messages, [done, failed], Outcome(sent=1, retry=[1]), at(61), KEYS, writes)

    outcomes = [(name, json.loads(text)['outcome'], keep) for name, text, keep in writes.history]
    assert outcomes == [('job', 'sent', 5), ('job', 'handed back', 5)]
    assert json.loads(writes.history[0][1])['sent'] == at(61).isoformat()
    assert writes.deletes == [('job', done.definition)] and writes.disables == []


def test_queue_finish_disables_conditionally_on_the_text_read() -> None:
    p = plan(row(policy={'max_runs': 1, 'on_finish': 'disable'}), 60, 61)
    writes = Writes()
    queue_finish(p, KEYS, writes)
    ((name, read, disabled),) = writes.disables
    assert (name, read) == ('job', p.definition)
    assert json.loads(disabled)['enabled'] is False


def test_messages_carry_the_row_key() -> None:
    p = plan(row(), 60, 61)
    assert p.messages == (Message(KEYS.entry('job'), p.fields or {}, at(60)),)


def test_run_states_and_schedules_alike_are_decoded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Entries that ran at the same moment share a meta text, entries with one schedule
    share its object: the planner decodes each once, and plans each entry as alone."""
    from redbeat import planner as planner_module

    decoded: list[str] = []

    def counting(key: str, text: str | None) -> tuple[datetime | None, int]:
        decoded.append(key)
        return decode_meta(key, text)

    monkeypatch.setattr(planner_module, 'decode_meta', counting)
    planner = Planner(UTC, Policy(), PARK_FOR)
    rows = [
        Row(
            KEYS.entry(f'job{i}'),
            encode_definition({'name': f'job{i}', 'task': 'proj.job',
                               'schedule': schedule(timedelta(seconds=60)), 'args': [i]}),
            encode_meta(at(0), 1),
        )
        for i in range(3)
    ]  # fmt: skip
    score = repr(timing.to_score(at(60)))
    plans = [planner.plan(r.key, score, r, at(61)) for r in rows]
    assert decoded == [KEYS.entry('job0')]  # the one meta text, parsed once
    assert [p.messages[0].occurrence for p in plans] == [at(60)] * 3
    assert [p.messages[0].fields['args'] for p in plans] == [[0], [1], [2]]
    scheds = {id(p.fields['schedule']) for p in plans if p.fields is not None}
    assert len(scheds) == 1 and len(planner._schedules) == 1
