"""The ``redbeat`` console script: runs :mod:`redbeat.cli`, or says why it cannot.

It lives outside the ``redbeat`` package on purpose.  celery-redbeat installs a
package of the same name; when its copy is the one Python imports (an editable
install of this package is shadowed by it, or its uninstall deleted our
files), ``redbeat.cli`` does not exist, and only code outside the package can
say what happened and how to fix it.
"""

from __future__ import annotations

import sys
from pathlib import Path


def _foreign_package() -> str | None:
    """Where the imported ``redbeat`` package is, if it is not this distribution's."""
    package = sys.modules.get('redbeat')
    where = getattr(package, '__file__', None)
    if where is None:  # the package itself failed to import: not a question of whose it is
        return None
    # conflicts.py exists only in this distribution's package, never in celery-redbeat's.
    return None if (Path(where).parent / 'conflicts.py').exists() else where


def main() -> None:
    try:
        from redbeat.cli import main as cli
    except ImportError:
        # Missing modules, or names missing from them (a mix of both packages' files).
        where = _foreign_package()
        if where is None:
            raise
        python = sys.executable
        sys.exit(
            f'redbeat: the redbeat package Python imports ({where}) is not redbeat-scheduler '
            "but another distribution's, celery-redbeat's most likely: both install it. Fix: "
            f'"{python} -m pip uninstall -y celery-redbeat", then '
            f'"{python} -m pip install --force-reinstall --no-deps redbeat-scheduler" '
            '(or -e DIR for an editable install)'
        )
    cli(prog_name='redbeat')


if __name__ == '__main__':
    main()
