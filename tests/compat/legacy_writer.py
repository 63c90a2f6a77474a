"""Run by the celery-redbeat 2.4.2 interpreter: save entries with 2.4.2's own API.

    python legacy_writer.py REDIS_URL

Interval, crontab, rrule and disabled entries, as a 2.x user saved them.
"""

import sys
from datetime import datetime, timezone

from celery import Celery
from celery.schedules import crontab, schedule
from dateutil.rrule import SECONDLY

from redbeat.schedulers import RedBeatSchedulerEntry
from redbeat.schedules import rrule


def main(url):
    app = Celery('mixed', broker=url)
    app.conf.update(redbeat_redis_url=url, redbeat_lock_key='beat-lock', timezone='UTC')
    start = datetime.now(timezone.utc).replace(microsecond=0)
    for name, sched, enabled in [
        ('iv', schedule(2.0), True),
        ('cron', crontab(minute='*'), True),
        ('rr', rrule(SECONDLY, dtstart=start, interval=2), True),
        ('off', schedule(1.0), False),
    ]:
        RedBeatSchedulerEntry(
            name, 'mixed.' + name, sched, args=[name], enabled=enabled, app=app
        ).save()


if __name__ == '__main__':
    main(sys.argv[1])
