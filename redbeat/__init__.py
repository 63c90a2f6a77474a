"""redbeat: a Celery beat scheduler that keeps the schedule in Redis.

Installed as the ``redbeat-scheduler`` distribution.
``celery -A proj beat -S redbeat.RedBeatScheduler`` (or the older name
``redbeat.RedisBeatScheduler``); entries are managed with
:class:`RedBeatSchedulerEntry`, the CLI, or plain redis-cli.
"""

from importlib.metadata import PackageNotFoundError, version

from .conflicts import DISTRIBUTION, warn_on_conflict
from .entry import RedBeatSchedulerEntry, delete_entries, save_entries
from .schedulers import RedBeatScheduler, RedisBeatScheduler

# celery-redbeat installs this import package too: say so before it bites.
warn_on_conflict()

try:  # one version string: pyproject.toml's, as installed
    __version__ = version(DISTRIBUTION)
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = '0+unknown'

__all__ = [
    'RedBeatScheduler',
    'RedBeatSchedulerEntry',
    'RedisBeatScheduler',
    'delete_entries',
    'save_entries',
]
