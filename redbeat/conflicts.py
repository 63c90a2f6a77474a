"""Is celery-redbeat installed next to this package?  Found at import and by the CLI.

This package is distributed as ``redbeat-scheduler`` (the name ``redbeat``
on PyPI is taken by a shim that installs celery-redbeat) and keeps the import
name ``redbeat``, which celery-redbeat 2.x installs too.  With both in one
environment, files of one overwrite the other's, uninstalling either deletes
the ``redbeat/`` files both claim, and an editable install can be shadowed by
the old copy in ``site-packages``.  There is no way to make two
distributions share a package directory safely, so the only fix is to
uninstall celery-redbeat and reinstall this package; :func:`conflict` says
exactly that, with the commands for this environment.
"""

from __future__ import annotations

import json
import sys
import warnings
from importlib import metadata

#: This package's distribution name (``pip install redbeat-scheduler``).
DISTRIBUTION = 'redbeat-scheduler'
#: The distribution that installs the same ``redbeat`` import package.
CONFLICTING = 'celery-redbeat'


class InstallConflictWarning(RuntimeWarning):
    """celery-redbeat is installed in the same environment as this package."""


def _reinstall_command() -> str:
    """The pip command that puts this package's files back, as it was installed."""
    # A checkout also holds build metadata (*.egg-info) without an origin: look at each.
    for ours in metadata.distributions(name=DISTRIBUTION):
        text = ours.read_text('direct_url.json')
        if not text:
            continue
        # PEP 610: an editable or local install records where it came from.
        origin = json.loads(text)
        url = str(origin.get('url', ''))
        if url.startswith('file://'):
            editable = '-e ' if origin.get('dir_info', {}).get('editable') else ''
            return f'pip install --force-reinstall --no-deps {editable}{url[len("file://") :]}'
        break
    return f'pip install --force-reinstall --no-deps {DISTRIBUTION}'


def conflict() -> str | None:
    """How to fix a celery-redbeat installed beside this package; None if there is none."""
    try:
        other = metadata.distribution(CONFLICTING)
    except metadata.PackageNotFoundError:
        return None
    where = other.locate_file('')
    return (
        f'{CONFLICTING} {other.version} is installed (in {where}) beside {DISTRIBUTION}: '
        'both install the redbeat package, so their files overwrite each other and '
        "uninstalling either deletes the other's. Fix: "
        f'"{sys.executable} -m pip uninstall -y {CONFLICTING}", then '
        f'"{sys.executable} -m {_reinstall_command()}"'
    )


def warn_on_conflict() -> None:
    """Warn (:class:`InstallConflictWarning`) if celery-redbeat is installed beside us."""
    message = conflict()
    if message is not None:
        warnings.warn(message, InstallConflictWarning, stacklevel=3)
