"""Run by the celery-redbeat 2.4.2 interpreter (never ours): every entry as 2.4.2 loads it.

    python legacy_entries.py REDIS_URL

Loads every member of the schedule as 2.4.2's beat does (``from_key``, then
``is_due``) and prints one JSON object: entry name -> its fields as
``plain.entry_fields`` spells them, or the exception 2.4.2 raised (a string).
"""

import json
import sys

from celery import Celery
from plain import entry_fields

from redbeat.schedulers import RedBeatSchedulerEntry, ensure_conf, get_redis


def main(url):
    app = Celery('legacy', broker=url)
    app.conf.update(redbeat_redis_url=url, timezone='UTC')
    conf = ensure_conf(app)
    outcome = {}
    for key in get_redis(app).zrange(conf.schedule_key, 0, -1):
        name = key[len(conf.key_prefix) :]
        try:
            entry = RedBeatSchedulerEntry.from_key(key, app=app)
            entry.is_due()
        except Exception as exc:
            outcome[name] = f'{type(exc).__name__}: {exc}'
        else:
            outcome[name] = entry_fields(entry)
    print(json.dumps(outcome))


if __name__ == '__main__':
    main(sys.argv[1])
