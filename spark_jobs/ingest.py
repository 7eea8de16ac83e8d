"""Ingest a raw image drop into curated Parquet (OpenCV decode, quarantine of bad files).

    spark-submit spark_jobs/ingest.py --run-config <root>/configs/<dataset>/<version>/<hash>.json
    spark-submit spark_jobs/ingest.py version=v1 [image_shape=32x32x1 resize_policy=pad ...]

Reads  <root>/raw/<dataset>/<version>/ (closed by _SUCCESS); writes
<root>/curated/<dataset>/<version>/{images.parquet,rejects.parquet,labels.json,manifest.json,_SUCCESS}.
Exit status 1 with the reason on stderr when the rejected share passes max_rejected_share
(rejects.parquet and manifest.json are still written, without _SUCCESS). See docs/ingest.md.
"""

from __future__ import annotations

import sys

from sparkvision.config.cli import run_job
from sparkvision.ingest.run import run_ingest


def work(spark, config) -> str:
    manifest = run_ingest(spark, config.paths, config.ingest)
    return f"ingested {manifest['accepted']} images, rejected {manifest['rejected']} -> {config.paths.curated}"


if __name__ == "__main__":
    sys.exit(run_job("ingest", __doc__, work))
