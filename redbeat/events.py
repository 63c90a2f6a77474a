"""Events for the unusual, as stored in the ``<prefix>:events`` stream.

Each event is one stream entry of flat string fields: ``event`` (its kind),
``time`` (ISO 8601, UTC) and the fields of that kind.  Written by beat only
when ``redbeat_events`` is on, capped at ``redbeat_events_maxlen`` entries
(``XADD MAXLEN ~``), and never read by beat itself.  Kinds:

``parked``          an entry cannot be read (``entry``, ``reason``); once per
                    entry until it is readable again or this beat restarts
``missed``          occurrences older than the catch-up window were not sent
                    (``entry``, ``task``, ``count``)
``skipped``         occurrences were not sent by the missed-run policy
                    (``entry``, ``task``, ``count``)
``publish_failed``  the broker did not take an occurrence (``entry``, ``task``,
                    ``reason``: ``broker_unavailable`` or ``error``, ``occurrence``)
``leader_gained``   this beat took the lock (``lock``, ``token``: its lock token)
``leader_lost``     this beat lost the lock while leading (``lock``, ``token``, ``reason``)
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

KINDS = ('parked', 'missed', 'skipped', 'publish_failed', 'leader_gained', 'leader_lost')
#: Which beat wrote an event (host and process, as the lock token starts).
_BEAT = f'{socket.gethostname()}:{os.getpid()}'


@dataclass(frozen=True)
class Event:
    kind: str
    at: float  # UNIX seconds
    details: dict[str, Any]

    def fields(self) -> dict[str, str]:
        """The stream entry's fields (flat strings, as XADD takes them)."""
        when = datetime.fromtimestamp(self.at, tz=timezone.utc).isoformat()
        out = {'event': self.kind, 'time': when, 'beat': _BEAT}
        out.update({k: str(v) for k, v in self.details.items()})
        return out
