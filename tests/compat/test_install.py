"""celery-redbeat installed beside this package is found at import and by the CLI,
with the commands that fix it.

The conflicting distribution is its installed metadata (a ``.dist-info``
directory on ``sys.path``), which is what pip leaves behind; the tests put
one on the path of a fresh interpreter.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _fake_celery_redbeat(where: Path) -> None:
    info = where / 'celery_redbeat-2.4.2.dist-info'
    info.mkdir(parents=True)
    (info / 'METADATA').write_text('Metadata-Version: 2.1\nName: celery-redbeat\nVersion: 2.4.2\n')
    (info / 'RECORD').write_text('redbeat/__init__.py,,\nredbeat/schedulers.py,,\n')


def _env(path: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONWARNINGS', 'PYTHONPATH')}
    env['PYTHONPATH'] = os.pathsep.join([str(path)] if path else []) + os.pathsep + str(REPO)
    return env


def _python(code: str, path: Path | None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, '-c', code],
        capture_output=True, text=True, env=_env(path), timeout=60, check=False,
    )  # fmt: skip


def test_import_warns_with_the_fix(tmp_path: Path) -> None:
    _fake_celery_redbeat(tmp_path)
    done = _python('import redbeat', tmp_path)
    assert done.returncode == 0, done.stderr
    assert 'InstallConflictWarning' in done.stderr
    assert 'celery-redbeat 2.4.2 is installed' in done.stderr
    assert f'{sys.executable} -m pip uninstall -y celery-redbeat' in done.stderr
    # The editable install of this checkout is put back as it was made.
    assert f'-m pip install --force-reinstall --no-deps -e {REPO}' in done.stderr


def test_no_warning_without_celery_redbeat(tmp_path: Path) -> None:
    done = _python('import redbeat', None)
    assert done.returncode == 0, done.stderr
    assert 'celery-redbeat' not in done.stderr


def test_cli_version_reports_the_conflict(tmp_path: Path) -> None:
    _fake_celery_redbeat(tmp_path)
    code = 'import sys; from redbeat.cli import main; main(["--version"], prog_name="redbeat")'
    done = _python(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith('redbeat ')
    assert 'WARNING: celery-redbeat 2.4.2 is installed' in done.stdout
    assert 'pip uninstall -y celery-redbeat' in done.stdout


def test_console_script_explains_a_shadowing_redbeat_package(tmp_path: Path) -> None:
    """celery-redbeat's redbeat/ (no cli.py) first on the path, as when it shadows ours."""
    shadow = tmp_path / 'redbeat'
    shadow.mkdir()
    (shadow / '__init__.py').write_text('')
    (shadow / 'schedulers.py').write_text('')
    # -S: no site-packages, so this checkout's editable finder cannot fill in redbeat.cli
    # (the e2e test shows the real thing, celery-redbeat in site-packages).
    code = 'import redbeat_launcher; redbeat_launcher.main()'
    done = subprocess.run([sys.executable, '-S', '-c', code], capture_output=True, text=True,
                          env=_env(tmp_path), cwd=tmp_path, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 1
    assert f'imports ({shadow / "__init__.py"}) is not redbeat-scheduler' in done.stderr
    assert 'pip uninstall -y celery-redbeat' in done.stderr
    assert 'Traceback' not in done.stderr


def test_check_fails_on_the_conflict(tmp_path: Path, redis_url: str) -> None:
    _fake_celery_redbeat(tmp_path)
    code = f'from redbeat.cli import main; main(["--url", "{redis_url}", "check"])'
    done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          env=_env(tmp_path), timeout=60, check=False)  # fmt: skip
    assert done.returncode == 1
    assert done.stdout.startswith('install-conflict      celery-redbeat: celery-redbeat 2.4.2')
    assert 'pip uninstall -y celery-redbeat' in done.stdout


def test_every_install_command_installs_this_package() -> None:
    """Each ``$ pip install X`` and ``pip install "X"`` of the docs and of redbeat's messages
    names this distribution."""
    import re

    toml = (REPO / 'pyproject.toml').read_text()
    [name] = re.findall(r'^name = "([^"]+)"', toml, flags=re.M)
    assert name == 'redbeat-scheduler'
    pages = [
        REPO / 'README.rst',
        *sorted((REPO / 'docs').glob('*.rst')),
        REPO / 'redbeat' / 'cli.py',
    ]
    pages += sorted((REPO / 'redbeat').glob('*.py'))  # error messages that say what to install
    pattern = r'\$ pip install ([^\s#]+)|pip install ["\']([^"\']+)["\']'
    found = [(p.name, a or b) for p in dict.fromkeys(pages)
             for a, b in re.findall(pattern, p.read_text())]  # fmt: skip
    assert len(found) >= 5, found
    for page, spec in found:
        dist, _, extra = spec.partition('[')
        assert dist == name, (page, spec)  # never "redbeat": that is another project
        assert not extra or f'\n{extra.rstrip("]")} = [' in toml, (page, spec)
