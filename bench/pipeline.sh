#!/usr/bin/env bash
# image_training's Spark jobs back to back, as a plain shell script: the baseline of
# `make bench BENCH=orchestration_overhead` (no Airflow, no sensors, nothing in between).
# Usage: bench/pipeline.sh ROOT key=value...   (e.g. version=v1 epochs=1)
# SPARK_SUBMIT_OPTIONS: further spark-submit options (the bench passes the DAG's own --conf flags).
set -euo pipefail
root=$1
shift
jobs_dir="$(cd "$(dirname "$0")/../spark_jobs" && pwd)"
for job in ingest tensorize train evaluate publish; do
  echo "job-start $job $(date +%s.%N)"
  # shellcheck disable=SC2086  # the options are words on purpose
  spark-submit --master "${SPARK_MASTER:-local[*]}" ${SPARK_SUBMIT_OPTIONS:-} --name "sparkvision-$job" \
    "$jobs_dir/$job.py" --root "$root" "$@"
  echo "job-end $job $(date +%s.%N)"
done
