#!/usr/bin/env bash
# Build a JVM class-data-sharing archive of the classes a sparkvision spark-submit loads.
#
#   bash scripts/spark_cds.sh            # (scripts/setup.sh runs it; fast when the archive is current)
#
# A spark-submit loads some 20,000 classes from pyspark's jars before its first task; with this
# archive they are mapped from one file instead (about 3 s less per spark-submit here, see
# docs/benchmarks.md). scripts/env.sh passes it to the driver JVM through SPARK_SUBMIT_OPTS. The
# archive belongs to this JDK and these jars: the JVM checks both and, with a stale archive,
# simply loads classes the usual way. Trained on an ingest of 100 generated images.
set -euo pipefail
cd "$(dirname "$0")/.."
ARCHIVE="${SPARKVISION_SPARK_CDS:-$PWD/.venv/spark-cds.jsa}"
JARS_DIR="$(.venv/bin/python -c 'import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))')"
log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# Current when newer than the jars, the JDK and the code that decides which classes a job loads.
current=1
for input in "$JARS_DIR" "$(readlink -f "$(command -v java)")" scripts/spark_cds_warmup.py sparkvision/ingest/*.py sparkvision/config/*.py sparkvision/platform/*.py; do
  [ -f "$ARCHIVE" ] && [ "$ARCHIVE" -nt "$input" ] || current=0
done
[ "$current" = 1 ] && exit 0
log "building the JVM class-data-sharing archive for spark-submit ($ARCHIVE)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
.venv/bin/python - "$WORK" <<'PY'
import sys
from pathlib import Path

import cv2
import numpy as np

drop = Path(sys.argv[1], "raw", "warmup", "v1")
rng = np.random.default_rng(0)
for label in ("a", "b"):
    (drop / label).mkdir(parents=True)
    for n in range(50):
        split = "train" if n < 40 else "test"
        cv2.imwrite(str(drop / label / f"{split}-{n:03d}.png"), rng.integers(0, 256, (28, 28), np.uint8))
(drop / "_SUCCESS").touch()
PY
. scripts/env.sh
unset SPARK_SUBMIT_OPTS  # build the archive without using an older one
spark-submit --master "local[2]" --conf spark.ui.enabled=false \
  --conf "spark.driver.extraJavaOptions=-XX:ArchiveClassesAtExit=$WORK/spark.jsa -Xlog:cds=off -Xlog:cds+dynamic=off" \
  scripts/spark_cds_warmup.py "file://$WORK" > "$WORK/ingest.log" 2>&1 \
  || { tail -40 "$WORK/ingest.log"; exit 1; }
mv -f "$WORK/spark.jsa" "$ARCHIVE"
