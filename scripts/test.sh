#!/usr/bin/env bash
# Run the whole test suite on a fresh Debian machine (or an existing checkout).
# Arguments go to pytest: bash scripts/test.sh -m 'not e2e' -x
set -euo pipefail
cd "$(dirname "$0")/.."
# The topology tests need Sentinel and redis-cli (cluster creation) as well.
export REDBEAT_APT_PACKAGES="${REDBEAT_APT_PACKAGES:-redis-server redis-sentinel redis-tools}"
source scripts/bootstrap.sh
exec .venv/bin/python -m pytest "$@"
