"""Run by the celery-redbeat 2.4.2 interpreter (never ours): what 2.4.2 makes of each entry.

    python legacy_reader.py REDIS_URL

Loads every member of the schedule as 2.4.2's beat does (``from_key``, then
``is_due``) and prints one JSON object: entry name -> null, or the
exception 2.4.2 raised.
"""

import json
import sys

from celery import Celery

from redbeat.schedulers import RedBeatSchedulerEntry, ensure_conf, get_redis


def main(url):
    app = Celery('legacy', broker=url)
    app.conf.update(redbeat_redis_url=url, timezone='UTC')
    conf = ensure_conf(app)
    outcome = {}
    for key in get_redis(app).zrange(conf.schedule_key, 0, -1):
        name = key[len(conf.key_prefix) :]
        try:
            RedBeatSchedulerEntry.from_key(key, app=app).is_due()
        except Exception as exc:
            outcome[name] = f'{type(exc).__name__}: {exc}'
        else:
            outcome[name] = None
    print(json.dumps(outcome))


if __name__ == '__main__':
    main(sys.argv[1])
