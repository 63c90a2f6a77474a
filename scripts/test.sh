#!/usr/bin/env bash
# Run the whole test suite on a fresh Debian machine (or an existing checkout).
# Arguments go to pytest: bash scripts/test.sh -m 'not e2e' -x
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
exec .venv/bin/python -m pytest "$@"
