"""What a tick does with the due rows it read: pure, given the rows and ``now``.

:class:`Planner` turns each due member (its stored strings) into a
:class:`Plan`: the claim moving its score, the claim's undo, and the messages
to send; an entry whose data makes planning raise is parked (its score moved
``park_for`` seconds on, its data untouched) and the plan says why.  After a
send, :func:`record` turns the outcome into the bookkeeping writes (history,
finish actions).  No I/O and no clock: the scheduler reads Redis and time and
hands them in, so tables of rows and moments test all of it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, tzinfo
from typing import Any

from . import timing
from .codec import Built, decode_definition, decode_meta, encode_definition, encode_meta
from .errors import DefinitionError
from .keys import Keys
from .policy import Policy
from .publish import Message, Outcome, task_id_of
from .store import Claim, Restore, Row, Writes

#: Decoded definitions and run states kept per planner (cleared when full).
CACHE_MAX = 200_000


@dataclass(frozen=True)
class Plan:
    """What one tick does with one due member: claim it, and send its occurrences."""

    claim: Claim
    restore: Restore
    messages: tuple[Message, ...] = ()  # empty: nothing to send (parked)
    history: int = 0  # dispatch records to keep
    finish: str | None = None  # 'disable' or 'delete' once these are sent
    fields: dict[str, Any] | None = None  # the decoded definition (for finish actions)
    definition: str | None = None  # its text as read: a finish action is conditional on it
    #: Why the entry was parked (its data could not be planned); None otherwise.
    problem: str | None = None


def park(member: str, score: str, row: Row, until: float) -> Plan:
    """Move an entry that will not be sent out of the due range; its data is untouched."""
    return Plan(
        Claim(row.key, member, score, until, None), Restore(row.key, until, score, row.meta)
    )


def describe(exc: Exception) -> str:
    """A one-line reason for an unexpected error planning an entry."""
    return f'cannot be scheduled ({type(exc).__name__}: {exc})'[:500]


class Planner:
    """Plans due rows; keeps the decoded forms of the texts it saw (by text, bounded)."""

    def __init__(self, tz: tzinfo, defaults: Policy, park_for: float) -> None:
        self.tz = tz  # the zone crontab fields are read in (the app's)
        self.defaults = defaults  # the app-wide policy an entry's own falls back on
        self.park_for = park_for  # seconds an unplannable entry waits before a new look
        self._decoded: dict[str, dict[str, Any]] = {}  # definition text -> fields
        self._metas: dict[str, tuple[datetime | None, int]] = {}  # meta text -> run state
        self._policies: dict[str, Policy] = {}  # policy text -> merged policy
        #: Schedules by their stored fields: entries alike share one (a crontab
        #: takes far longer to parse than the rest of its definition).
        self._schedules: Built = {}

    def plan(
        self, member: str, score: str, row: Row, now: datetime, send_at: datetime | None = None
    ) -> Plan:
        """What to do with one due member; an entry that raises anything is parked.

        ``send_at``: when its messages are expected to leave (late in a long
        tick), so a run sent late is not bunched with its next (see
        :func:`redbeat.timing.plan_run`).

        Defence in depth: the codec refuses what beat cannot run, but whatever
        one entry's data makes decoding or planning raise must not stop its
        chunk-mates or beat; the entry is looked at again once per ``park_for``.
        """
        try:
            return self._plan_entry(member, score, row, now, send_at)
        except Exception as exc:
            reason = exc.reason if isinstance(exc, DefinitionError) else describe(exc)
            parked = park(member, score, row, now.timestamp() + self.park_for)
            return replace(parked, problem=reason)

    def _plan_entry(
        self, member: str, score: str, row: Row, now: datetime, send_at: datetime | None
    ) -> Plan:
        fields = self.decode(row)
        last_run_at, count = self.meta(row)
        policy = self.policy(row)
        if not fields['enabled']:
            return park(member, score, row, timing.NEVER)
        sched, tz = fields['schedule'], self.tz
        first = timing.first_occurrence(sched, policy, last_run_at, float(score), now, tz)
        finish = policy.on_finish if policy.on_finish in ('disable', 'delete') else None
        done = policy.max_runs is not None and count >= policy.max_runs
        if first is None or done:  # no occurrence left
            parked = park(member, score, row, timing.NEVER)
            return replace(parked, finish=finish, fields=fields, definition=row.definition)
        if first > now:  # not due yet (its definition changed by hand): move to its time
            return park(member, score, row, timing.due_score(row.key, first, policy))
        run = timing.plan_run(sched, policy, first, now, count, tz, key=row.key, send_at=send_at)
        meta = encode_meta(run.last_run_at, run.total_run_count)
        self._remember_meta(meta, run.last_run_at, run.total_run_count)
        claim = Claim(row.key, member, score, run.score, meta, run.missed, run.skipped)
        restore = Restore(row.key, run.score, score, row.meta)
        return Plan(
            claim,
            restore,
            tuple(Message(row.key, fields, occurrence) for occurrence in run.sends),
            history=policy.history or 0,
            finish=finish if run.next_occurrence is None else None,
            fields=fields,
            definition=row.definition,
        )

    def policy(self, row: Row) -> Policy:
        """The entry's policy over the app's defaults (cached by its text)."""
        cached = self._policies.get(row.policy or '')
        if cached is None:
            cached = Policy.from_json(row.key, row.policy).merged(self.defaults)
            self._policies[row.policy or ''] = cached
        return cached

    def meta(self, row: Row) -> tuple[datetime | None, int]:
        """The entry's run state (cached by its text: the meta this planner wrote, and
        the one many entries share, such as crontabs that ran at the same minute)."""
        if not row.meta:
            return None, 0
        known = self._metas.get(row.meta)
        if known is None:
            known = decode_meta(row.key, row.meta)
            self._remember_meta(row.meta, *known)
        return known

    def _remember_meta(self, meta: str, last_run_at: datetime | None, count: int) -> None:
        if len(self._metas) >= CACHE_MAX:
            self._metas.clear()
        self._metas[meta] = (last_run_at, count)  # immutable: safe to share

    def decode(self, row: Row) -> dict[str, Any]:
        """The entry's definition fields (cached by its text); DefinitionError if unreadable."""
        if row.error:
            raise DefinitionError(row.key, row.error)
        if row.definition is None:
            raise DefinitionError(
                row.key, 'is in the schedule but has no definition (no such hash)'
            )
        fields = self._decoded.get(row.definition)
        if fields is None:
            fields = decode_definition(row.key, row.definition, self._schedules)
            if len(self._decoded) >= CACHE_MAX:
                self._decoded.clear()
            self._decoded[row.definition] = fields
        return fields


def claim_groups(plans: Sequence[Plan], size: int) -> Iterator[list[Plan]]:
    """``plans`` in consecutive groups of at most ``size`` messages (at least one plan)."""
    group: list[Plan] = []
    count = 0
    for plan in plans:
        if group and count + len(plan.messages) > size:
            yield group
            group, count = [], 0
        group.append(plan)
        count += len(plan.messages)
    if group:
        yield group


def journaled(plan: Plan, row: Row) -> Plan:
    """``plan`` with a journal record per occurrence (at-least-once delivery).

    The record holds the definition the message is built from, so a next
    leader re-sends exactly this message even if the entry changed since.
    """
    if not plan.messages:
        return plan
    journal = tuple(
        (m.task_id, json.dumps({'key': m.key, 'occurrence': m.occurrence.isoformat(),
                                'definition': row.definition}, separators=(',', ':')))
        for m in plan.messages
    )  # fmt: skip
    ids = tuple(task_id for task_id, _ in journal)
    return replace(plan, claim=replace(plan.claim, journal=journal),
                   restore=replace(plan.restore, journal=ids))  # fmt: skip


def record(
    messages: Sequence[Message],
    owner: Sequence[Plan],
    outcome: Outcome,
    sent_at: datetime,
    keys: Keys,
    writes: Writes,
) -> None:
    """Queue on ``writes`` the history records and finish actions of a send's ``outcome``
    (``owner``: the plan of each message)."""
    sent = sent_at.isoformat()
    retry, skipped, uncertain = set(outcome.retry), set(outcome.skipped), set(outcome.uncertain)
    finished: dict[int, Plan] = {}
    for i, (message, plan) in enumerate(zip(messages, owner)):
        result = (
            'handed back' if i in retry
            else 'error' if i in skipped
            else 'uncertain' if i in uncertain
            else 'sent'
        )  # fmt: skip
        if plan.history:
            entry = {
                'scheduled': message.occurrence.isoformat(),
                'sent': sent,
                'task_id': task_id_of(message),
                'outcome': result,
            }
            writes.history.append((keys.name_of(message.key), json.dumps(entry), plan.history))
        if plan.finish and result == 'sent':
            finished[id(plan)] = plan
    for plan in finished.values():
        queue_finish(plan, keys, writes)


def queue_finish(plan: Plan, keys: Keys, writes: Writes) -> None:
    """Queue disabling or deleting an entry that has no occurrence left.

    Only if its definition is still the text this plan read: an edit made
    since wins, and a deleted entry is not written again (``finish.lua``).
    """
    if plan.definition is None:
        return
    name = keys.name_of(plan.claim.key)
    if plan.finish == 'delete':
        writes.deletes.append((name, plan.definition))
    elif plan.finish == 'disable' and plan.fields is not None:
        disabled = encode_definition({**plan.fields, 'enabled': False})
        writes.disables.append((name, plan.definition, disabled))
