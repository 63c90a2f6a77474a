"""Every Redis key name redbeat uses, derived from one prefix.

With the default prefix ``redbeat:`` the layout is the celery-redbeat 2.x one::

    redbeat:<name>        hash: definition, meta (+ fields only redbeat reads)
    redbeat::schedule     sorted set: member = entry key, score = next due time
    redbeat::statics      set: names of entries that come from beat_schedule
    redbeat::lock         string: the leader lock
    redbeat::changes      pub/sub channel: "something changed, look again"
    redbeat::history:<n>  list: the entry's latest dispatches, JSON, newest first
    redbeat::heartbeat    string: JSON of the leader's last tick (``redbeat health``)
    redbeat::events       stream: unusual events, capped (opt-in, ``redbeat_events``)
    redbeat::journal      hash: occurrences claimed, not yet confirmed sent
                          (``redbeat_delivery = 'at-least-once'`` only)

Entry names never start with ``:``, so ``<prefix>:<anything>`` is ours; nor
may an entry be named after the lock key when ``redbeat_lock_key`` lies under
the prefix without the colon (``redbeat:beat-lock``).
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import DefinitionError


@dataclass(frozen=True)
class Keys:
    prefix: str = 'redbeat:'
    #: The leader lock key when it is not the default one (it may lie under the prefix).
    lock: str | None = None

    @property
    def hash_tag(self) -> str | None:
        """The Redis Cluster hash tag every key shares (``redbeat`` for ``{redbeat}:``).

        None when the prefix holds no complete, non-empty ``{...}``: then the
        keys of one schedule may land in different cluster slots.
        """
        start = self.prefix.find('{')
        end = self.prefix.find('}', start + 1)
        if start < 0 or end <= start + 1:
            return None
        return self.prefix[start + 1 : end]

    @property
    def schedule(self) -> str:
        return self.prefix + ':schedule'

    @property
    def statics(self) -> str:
        return self.prefix + ':statics'

    @property
    def default_lock(self) -> str:
        return self.prefix + ':lock'

    @property
    def changes(self) -> str:
        return self.prefix + ':changes'

    @property
    def heartbeat(self) -> str:
        return self.prefix + ':heartbeat'

    @property
    def events(self) -> str:
        return self.prefix + ':events'

    @property
    def journal(self) -> str:
        """Occurrences claimed but not confirmed sent (at-least-once delivery)."""
        return self.prefix + ':journal'

    def history(self, name: str) -> str:
        """The list of an entry's latest dispatches (newest first)."""
        return self.prefix + ':history:' + name

    def entry(self, name: str) -> str:
        """The hash key of the entry called ``name``."""
        return self.prefix + name

    def name_of(self, key: str) -> str:
        """The entry name for a hash key or a sorted-set member.

        A member written by hand without the prefix (``ZADD redbeat::schedule
        0 nightly``) names the entry ``nightly``.
        """
        if key.startswith(self.prefix):
            return key[len(self.prefix) :]
        return key

    def key_of(self, member: str) -> str:
        """The hash key a sorted-set member stands for."""
        return self.entry(self.name_of(member))

    def is_internal(self, key: str) -> bool:
        """True for keys redbeat owns that are not entries (``<prefix>:...``, the lock)."""
        return key.startswith(self.prefix + ':') or key == self.lock

    def entry_checked(self, name: str) -> str:
        """The hash key of the entry a user names; DefinitionError for a name that
        is not an entry's (empty, or one of redbeat's own keys)."""
        if not isinstance(name, str) or not name:
            raise DefinitionError(repr(name), 'an entry name must be a non-empty string')
        key = self.entry(name)
        if self.is_internal(key):
            raise DefinitionError(
                key,
                "is redbeat's own key, not an entry: entry names may not start with ':'"
                + ('' if name.startswith(':') else ' nor name the lock key'),
            )
        return key

    def scan_pattern(self) -> str:
        """A SCAN MATCH pattern for every key under the prefix."""
        escaped = ''.join('\\' + c if c in '*?[]\\' else c for c in self.prefix)
        return escaped + '*'
