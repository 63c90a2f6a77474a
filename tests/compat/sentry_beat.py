"""Run in a subprocess by test_hooks.py: Sentry Crons over one in-process beat tick.

    python sentry_beat.py SCHEDULE_URL BROKER_URL

Sentry's Celery integration patches classes for the life of the process
(Celery's and ours), so it runs apart from the test process.  Events go to a
capturing transport, never the network; the check-ins captured are printed
as one JSON list on stdout.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import sentry_sdk
from celery import Celery
from sentry_sdk.envelope import Envelope
from sentry_sdk.integrations.celery import CeleryIntegration
from sentry_sdk.transport import Transport

CHECK_INS: list[dict[str, Any]] = []


class Capture(Transport):  # type: ignore[misc]
    """Keeps every check-in instead of sending it."""

    def capture_envelope(self, envelope: Envelope) -> None:
        for item in envelope.items:
            if item.type == 'check_in':
                CHECK_INS.append(json.loads(item.get_bytes()))


def main(schedule_url: str, broker_url: str) -> None:
    sentry_sdk.init(
        dsn='http://public@127.0.0.1:9/1',
        transport=Capture,
        integrations=[CeleryIntegration(monitor_beat_tasks=True)],
        default_integrations=False,
    )
    from redbeat.schedulers import RedBeatScheduler  # as a beat process imports it: after init

    app = Celery('sentry', broker=broker_url)
    app.conf.update(redbeat_redis_url=schedule_url, redbeat_lock_key=None, timezone='UTC')
    scheduler = RedBeatScheduler(app=app)
    scheduler.listen_for_changes = False
    try:
        assert scheduler.hooked(), 'Sentry did not hook the scheduler'
        scheduler.tick()
        scheduler.tick()  # nothing more is due: no second check-in
    finally:
        scheduler.close()
    sentry_sdk.flush()
    print(json.dumps(CHECK_INS))


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2])
