"""All Redis I/O of redbeat: one :class:`ScheduleStore` over an injected client.

The store moves strings: definitions and meta as JSON text, scores as the
exact strings Redis returns.  Decoding and schedule math happen elsewhere, so
every method here is one round trip (a pipeline or a script) whatever the
number of entries it is given, unless its docstring says otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Union

import redis
from redis.commands.core import Script

from .errors import LeadershipLost
from .keys import Keys

#: A score to write: a number, or the exact string Redis returned.
Score = Union[float, str]


def _script(client: redis.Redis, name: str) -> Script:
    source = (resources.files('redbeat') / 'lua' / name).read_text(encoding='utf-8')
    return client.register_script(source)


def _exact(raw: bytes | str) -> str:
    """A score as Redis sent it (redis-py hands the cast function bytes)."""
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _score_text(score: Score) -> str:
    return score if isinstance(score, str) else repr(float(score))


@dataclass(frozen=True)
class Row:
    """One entry as stored: its hash fields, or the error reading them gave."""

    key: str
    definition: str | None = None
    meta: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class SaveItem:
    """An entry definition to write (see ``lua/save.lua``)."""

    key: str
    name: str
    definition: str
    expected_meta: str | None
    new_meta: str | None
    score: Score
    keep_score: bool = False  # leave the score alone if the entry is scheduled


@dataclass(frozen=True)
class Claim:
    """Move ``member`` from score ``expected`` to ``score`` (see ``lua/claim.lua``)."""

    key: str
    member: str
    expected: str
    score: Score
    meta: str | None  # None: leave meta alone


@dataclass(frozen=True)
class Restore:
    """Undo a claim: put back ``score`` and ``meta`` if the claim still stands."""

    key: str
    claimed: Score
    score: Score
    meta: str | None


class ScheduleStore:
    """The schedule in Redis.  Constructing it does no I/O."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys
        self._save = _script(client, 'save.lua')
        self._claim = _script(client, 'claim.lua')
        self._rollback = _script(client, 'rollback.lua')

    # --- reading -----------------------------------------------------------

    def due(self, now: float, limit: int | None = None) -> list[tuple[str, str]]:
        """Members due at ``now`` (score 0..now), earliest first, with exact scores."""
        rows = self.client.zrangebyscore(
            self.keys.schedule, 0, now, start=0 if limit else None, num=limit,
            withscores=True, score_cast_func=_exact,
        )  # fmt: skip
        return [(str(row[0]), str(row[1])) for row in rows]

    def next_due(self, now: float) -> float | None:
        """The score of the first entry due after ``now``, or None if there is none."""
        rows = self.client.zrangebyscore(
            self.keys.schedule, f'({now!r}', '+inf', start=0, num=1, withscores=True
        )
        return float(rows[0][1]) if rows else None

    def fetch(self, keys: Sequence[str]) -> list[Row]:
        """Definition and meta of each key, in one pipeline; errors kept per key."""
        if not keys:
            return []
        with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hmget(key, 'definition', 'meta')
            replies = pipe.execute(raise_on_error=False)
        return [_row(key, reply) for key, reply in zip(keys, replies)]

    def read(self, key: str) -> tuple[Row, float | None]:
        """One entry and its score (None when it is not in the sorted set)."""
        with self.client.pipeline(transaction=False) as pipe:
            pipe.hmget(key, 'definition', 'meta')
            pipe.zscore(self.keys.schedule, key)
            reply, score = pipe.execute(raise_on_error=False)
        return _row(key, reply), None if isinstance(score, Exception) else score

    def scores(self, members: Sequence[str]) -> list[float | None]:
        """The score of each member (None where it is not in the schedule)."""
        if not members:
            return []
        return list(self.client.zmscore(self.keys.schedule, list(members)))

    def scan_entry_keys(self, count: int = 1000) -> Iterator[list[str]]:
        """Batches of entry hash keys under the prefix (SCAN: one round trip a batch)."""
        cursor = 0
        while True:
            cursor, found = self.client.scan(
                cursor, match=self.keys.scan_pattern(), count=count, _type='hash'
            )
            batch = [str(k) for k in found if not self.keys.is_internal(str(k))]
            if batch:
                yield batch
            if cursor == 0:
                return

    def statics(self) -> set[str]:
        return {str(name) for name in self.client.smembers(self.keys.statics)}

    def count(self) -> int:
        return int(self.client.zcard(self.keys.schedule))

    def config_get(self, name: str) -> str | None:
        """A server setting (CONFIG GET), or None when the server does not allow it."""
        try:
            reply = self.client.config_get(name)
        except redis.ResponseError:
            return None
        value = reply.get(name)
        return None if value is None else str(value)

    # --- writing -----------------------------------------------------------

    def save(self, items: Sequence[SaveItem], notify: bool = True) -> list[bool]:
        """Write definitions (one script call); False where meta changed meanwhile."""
        if not items:
            return []
        args: list[Any] = [self.keys.changes if notify else '']
        for item in items:
            args += [
                item.key,
                item.name,
                item.definition,
                item.expected_meta or '',
                item.new_meta or '',
                _score_text(item.score),
                '1' if item.keep_score else '0',
            ]
        result = self._save(keys=[self.keys.schedule, *(i.key for i in items)], args=args)
        return [bool(flag) for flag in result]

    def delete(self, names: Iterable[str], notify: bool = True) -> int:
        """Delete entries (hash and schedule member); returns how many hashes existed."""
        names = list(names)
        if not names:
            return 0
        keys = [self.keys.entry(n) for n in names]
        with self.client.pipeline(transaction=True) as pipe:
            pipe.zrem(self.keys.schedule, *keys, *names)
            pipe.delete(*keys)
            if notify:
                pipe.publish(self.keys.changes, 'delete')
            replies = pipe.execute()
        return int(replies[1])

    def set_state(self, key: str, meta: str | None, score: Score) -> None:
        """Store an entry's run state and score as given (reschedule)."""
        with self.client.pipeline(transaction=True) as pipe:
            if meta is None:
                pipe.hdel(key, 'meta')
            else:
                pipe.hset(key, 'meta', meta)
            pipe.zadd(self.keys.schedule, {key: _score_text(score)})
            pipe.publish(self.keys.changes, 'state')
            pipe.execute()

    def add_statics(self, names: Iterable[str]) -> None:
        names = list(names)
        if names:
            self.client.sadd(self.keys.statics, *names)

    def forget_statics(self, names: Iterable[str]) -> None:
        names = list(names)
        if names:
            self.client.srem(self.keys.statics, *names)

    def add_missing(self, scores: Mapping[str, Score]) -> int:
        """Add members that are not in the schedule yet (ZADD NX)."""
        if not scores:
            return 0
        mapping = {key: _score_text(s) for key, s in scores.items()}
        return int(self.client.zadd(self.keys.schedule, mapping, nx=True))  # type: ignore[arg-type]

    def claim(self, claims: Sequence[Claim], lock_key: str | None, token: str | None) -> list[bool]:
        """Claim occurrences (one script call); False where the score moved.

        Raises :class:`LeadershipLost` when ``token`` no longer holds the lock.
        """
        if not claims:
            return []
        args: list[Any] = [token or '']
        for c in claims:
            args += [c.member, c.expected, _score_text(c.score), c.meta or '']
        keys = [self.keys.schedule, lock_key or self.keys.schedule, *(c.key for c in claims)]
        result = self._claim(keys=keys, args=args)
        if result == -1:
            raise LeadershipLost(lock_key or '')
        return [bool(flag) for flag in result]

    def rollback(self, restores: Sequence[Restore], lock_key: str | None, token: str | None) -> int:
        """Undo claims whose publish failed; returns how many were restored."""
        if not restores:
            return 0
        args: list[Any] = [token or '']
        for r in restores:
            args += [_score_text(r.claimed), _score_text(r.score), r.meta or '']
        keys = [self.keys.schedule, lock_key or self.keys.schedule, *(r.key for r in restores)]
        result = int(self._rollback(keys=keys, args=args))
        if result == -1:
            raise LeadershipLost(lock_key or '')
        return result


def _row(key: str, reply: Any) -> Row:
    if isinstance(reply, Exception):
        reason = str(reply)
        if reason.startswith('WRONGTYPE'):
            reason = 'key holds a value of the wrong type (a hash is expected)'
        return Row(key, error=reason)
    definition, meta = reply
    return Row(key, definition, meta)
