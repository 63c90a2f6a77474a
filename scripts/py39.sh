#!/usr/bin/env bash
# The lowest supported Python (3.9): mypy --python-version 3.9, then the unit
# tests, in .venv39 with the dependencies pip picks for 3.9 (redis-py 6, click
# 8.1).  mypy 2 refuses the 3.9 target: on 3.9 the test extra brings the last
# mypy that checks it.  Arguments go to pytest (default: tests/unit).
# Python 3.9 comes from PATH, $PYTHON39, or pyenv (pyenv install 3.9).
set -euo pipefail
cd "$(dirname "$0")/.."

find_python39() {
    if [ -n "${PYTHON39:-}" ]; then
        echo "$PYTHON39"
    elif command -v python3.9 >/dev/null && python3.9 -c '' 2>/dev/null; then
        command -v python3.9
    else  # a pyenv shim without 3.9 selected still finds the installed one
        local found
        for found in "$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"/versions/3.9*/bin/python3.9; do
            [ -x "$found" ] && echo "$found" && return
        done
        return 1
    fi
}

if ! python=$(find_python39) && command -v pyenv >/dev/null; then
    echo '[py39] no Python 3.9 found: pyenv install 3.9 (a few minutes)' >&2
    pyenv install -s 3.9 >&2
    python=$(find_python39) || true
fi
[ -n "${python:-}" ] || {
    echo 'FAILED: no Python 3.9 (put python3.9 on PATH, set PYTHON39, or pyenv install 3.9)' >&2
    exit 1
}
if [ ! -x .venv39/bin/python ]; then
    echo "[py39] creating .venv39 with $("$python" --version 2>&1)" >&2
    "$python" -m venv .venv39
fi
stamp=.venv39/.redbeat-installed
want=$(cksum <pyproject.toml)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "[py39] pip install -e '.[test]'" >&2
    .venv39/bin/python -m pip install -q -e '.[test]'
    printf '%s' "$want" >"$stamp"
fi
# Ignores that one redis-py's typing needs and the other's does not are
# marked unused-ignore; the rest are checked by the main mypy run.
.venv39/bin/mypy --python-version 3.9 --no-warn-unused-ignores
exec .venv39/bin/python -m pytest -p no:cacheprovider -q "${@:-tests/unit}"
