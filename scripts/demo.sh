#!/usr/bin/env bash
# Show redbeat for real: private redis-server, celery worker and beat, an
# entry added at run time, executed, deleted. See demo/run_demo.py.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
exec .venv/bin/python demo/run_demo.py "$@"
