"""celery-redbeat 2.4.2 from PyPI in a private virtualenv (the benchmark's, made once).

Its ``redbeat`` package has our name, so its processes run from a directory
where ours cannot be imported, without PYTHONPATH.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from bench.run import legacy_python

HERE = Path(__file__).resolve().parent


def legacy_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'REDBEAT_REDIS_URL')}


def legacy_run(script: str, url: str, workdir: Path) -> str:
    """Run ``script`` (beside this file) with 2.4.2's interpreter; its stdout."""
    done = subprocess.run(
        [str(legacy_python()), str(HERE / script), url],
        capture_output=True, text=True, timeout=120, cwd=workdir, env=legacy_env(), check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def legacy_read(url: str, workdir: Path) -> dict[str, str | None]:
    """What 2.4.2 makes of each entry of the schedule at ``url`` (name -> error or None)."""
    out = legacy_run('legacy_reader.py', url, workdir)
    result: dict[str, str | None] = json.loads(out.strip().splitlines()[-1])
    return result
