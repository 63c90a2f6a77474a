"""Installing over celery-redbeat, for real: a private virtualenv, celery-redbeat 2.4.2
from the package index, this package as a wheel built from the checkout.

Shows the hazard the docs describe (uninstalling celery-redbeat deletes this
package's files), that the warning at import gives commands that repair it,
and runs docs/migrating.rst's install steps verbatim (``pip`` finds the
wheel through ``PIP_FIND_LINKS``, as it would find the release on the index).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from tests.docs import blocks, commands
from tests.procs import CeleryProcess, wait_for
from tests.redis_server import RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
LEGACY = 'celery-redbeat==2.4.2'


def _run(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=600,
                          check=False)  # fmt: skip
    assert done.returncode == 0, (argv, done.stdout, done.stderr)
    return done


@pytest.fixture(scope='module')
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This package as a wheel, built from a copy (the checkout stays clean)."""
    src = tmp_path_factory.mktemp('src')
    for name in ('pyproject.toml', 'README.rst', 'redbeat_launcher.py'):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / 'redbeat', src / 'redbeat',
                    ignore=shutil.ignore_patterns('__pycache__'))  # fmt: skip
    dist = tmp_path_factory.mktemp('dist')
    _run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '-q', '-w', str(dist), str(src)],
         dict(os.environ), src)  # fmt: skip
    return dist


@pytest.fixture
def venv(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A virtualenv holding celery-redbeat 2.4.2; its bin dir and an env that runs it."""
    home = tmp_path / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', str(home)], check=True, timeout=120)
    env = {k: v for k, v in os.environ.items()
           if k not in ('PYTHONPATH', 'VIRTUAL_ENV', 'REDBEAT_REDIS_URL')}  # fmt: skip
    env['PATH'] = f'{home / "bin"}{os.pathsep}{env["PATH"]}'
    env['PIP_DISABLE_PIP_VERSION_CHECK'] = '1'
    _run([str(home / 'bin' / 'python'), '-m', 'pip', 'install', '-q', LEGACY], env, tmp_path)
    return home / 'bin', env


def _package_files(bin_dir: Path) -> set[str]:
    site = next((bin_dir.parent / 'lib').glob('python3*/site-packages'))
    return (
        {p.name for p in (site / 'redbeat').glob('*.py')} if (site / 'redbeat').exists() else set()
    )


def test_over_celery_redbeat_warns_and_its_fix_works(
    wheel: Path, venv: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    bin_dir, env = venv
    python = str(bin_dir / 'python')
    [built] = wheel.glob('redbeat_scheduler-*.whl')
    _run([python, '-m', 'pip', 'install', '-q', str(built)], env, tmp_path)
    assert 'cli.py' in _package_files(bin_dir)

    imported = _run([python, '-c', 'import redbeat'], env, tmp_path)
    assert 'InstallConflictWarning: celery-redbeat 2.4.2 is installed' in imported.stderr
    version = _run([str(bin_dir / 'redbeat'), '--version'], env, tmp_path)
    assert 'WARNING: celery-redbeat 2.4.2 is installed' in version.stdout

    # The warning's two commands, run as printed (pip finds the wheel as it would the release).
    fix = re.findall(r'"([^"]+ -m pip [^"]+)"', imported.stderr)
    assert [c.split(' -m ')[1].split()[:2] for c in fix] == [
        ['pip', 'uninstall'],
        ['pip', 'install'],
    ]
    env_fix = {**env, 'PIP_FIND_LINKS': str(wheel)}
    _run(fix[0].split(), env_fix, tmp_path)
    # The hazard: celery-redbeat's uninstall removed the files both claimed, ours too.
    assert 'schedulers.py' not in _package_files(bin_dir)
    _run(fix[1].split(), env_fix, tmp_path)
    after = _run([python, '-W', 'error::RuntimeWarning', '-c', 'import redbeat.cli'], env,
                 tmp_path)  # fmt: skip
    assert after.stderr == ''
    assert 'WARNING' not in _run([str(bin_dir / 'redbeat'), '--version'], env, tmp_path).stdout


def test_an_editable_install_shadowed_by_celery_redbeat_is_explained(
    venv: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    bin_dir, env = venv
    src = tmp_path / 'src'
    src.mkdir()
    for name in ('pyproject.toml', 'README.rst', 'redbeat_launcher.py'):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / 'redbeat', src / 'redbeat',
                    ignore=shutil.ignore_patterns('__pycache__'))  # fmt: skip
    _run([str(bin_dir / 'python'), '-m', 'pip', 'install', '-q', '--no-deps', '-e', str(src)],
         env, tmp_path)  # fmt: skip
    # celery-redbeat's copy in site-packages is found before the editable finder's.
    done = subprocess.run([str(bin_dir / 'redbeat'), 'list'], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 1, done
    assert 'is not redbeat-scheduler' in done.stderr and 'site-packages' in done.stderr
    assert 'pip uninstall -y celery-redbeat' in done.stderr


def test_the_documented_upgrade_steps(
    wheel: Path, venv: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    bin_dir, env = venv
    env = {**env, 'PIP_FIND_LINKS': str(wheel)}
    [install] = [b for b in blocks('migrating.rst', 'console') if 'pip uninstall' in b]
    outputs = [_run(['bash', '-c', line], env, tmp_path).stdout for line in commands(install)]
    assert outputs[-1].startswith('redbeat 3.') and 'redbeat-scheduler' in outputs[-1]
    assert 'WARNING' not in outputs[-1]
    assert {'cli.py', 'conflicts.py'} <= _package_files(bin_dir)


def test_quickstart_in_a_fresh_virtualenv(
    wheel: Path, tmp_path: Path, redis_url: str, redis_server: RedisServer
) -> None:
    """The quick start as a new user runs it: its install line, its proj/celery.py and its
    beat command, verbatim; the environment points them at the test server."""
    home = tmp_path / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', str(home)], check=True, timeout=120)
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'VIRTUAL_ENV')}
    env.update(
        PATH=f'{home / "bin"}{os.pathsep}{env["PATH"]}',
        PIP_FIND_LINKS=str(wheel),
        PIP_DISABLE_PIP_VERSION_CHECK='1',
        REDBEAT_REDIS_URL=redis_url,  # wins over the file's redbeat_redis_url
        CELERY_BROKER_URL=redis_server.url_for(1),  # wins over its broker
    )
    console = blocks('quickstart.rst', 'console')
    [install] = commands(console[0])
    _run(['bash', '-c', install], env, tmp_path)
    (tmp_path / 'proj').mkdir()
    (tmp_path / 'proj' / '__init__.py').write_text('')
    (tmp_path / 'proj' / 'celery.py').write_text(blocks('quickstart.rst', 'python')[0])
    worker, beat = commands(console[1])
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    logs = tmp_path / 'logs'
    with CeleryProcess('worker', shlex.split(worker), cwd=tmp_path, env=env, log_dir=logs,
                       repo_on_path=False) as work, \
         CeleryProcess('beat', shlex.split(beat), cwd=tmp_path, env=env, log_dir=logs,
                       repo_on_path=False) as proc:  # fmt: skip
        wait_for(lambda: client.exists('redbeat:nightly-report') and client.get('redbeat::lock'),
                 90, message='beat writes the static entry and holds the lock')  # fmt: skip
        broker = redis.Redis.from_url(redis_server.url_for(1))
        # The worker logs at WARNING without -l, so watch its queue binding appear instead.
        wait_for(lambda: broker.exists('_kombu.binding.celery'), 90,
                 message='the worker consumes from its queue')  # fmt: skip
        # The page's next example, run as a script beside proj/: add an entry, delete it.
        (tmp_path / 'example.py').write_text(blocks('quickstart.rst', 'python')[1])
        _run([str(home / 'bin' / 'python'), 'example.py'], {**env, 'PYTHONPATH': str(tmp_path)},
             tmp_path)  # fmt: skip
        assert not client.exists('redbeat:ping-every-30s')  # saved, then deleted
        assert proc.alive and work.alive, proc.log() + work.log()
    assert 'Traceback' not in proc.log(), proc.log()
