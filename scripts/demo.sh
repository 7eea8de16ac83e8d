#!/usr/bin/env bash
# make demo: the full Fashion-MNIST through image_training on the embedded defaults
# (SQLite Airflow in .airflow/, Spark local[*], storage root file://<repo>/data).
# Usage: scripts/demo.sh [VERSION]   (set-up is `make setup`, which `make demo` runs first)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
airflow db migrate > /dev/null 2>&1 || airflow db migrate
# Heavy work waits for any benchmark holding the machine (timings stay honest on 2 cores).
exec flock "${SPARKVISION_HEAVY_LOCK:-/tmp/sparkvision-heavy.lock}" python -m devtools.demo --version "${1:-v1}" ${DEMO_ARGS:-}
