"""Split curated images deterministically and write training-ready tensor shards.

    spark-submit spark_jobs/tensorize.py --run-config <root>/configs/<dataset>/<version>/<hash>.json
    spark-submit spark_jobs/tensorize.py version=v1 [validation_share=0.2 ...]

Reads  <root>/curated/<dataset>/<version>/ (closed by _SUCCESS, made with the run's ingest
parameters); writes <root>/tensors/<dataset>/<version>/{train,validation,test}/, stats.json, _SUCCESS.
"""

from __future__ import annotations

import sys

from sparkvision.config.cli import run_job
from sparkvision.training.tensorize import run_tensorize


def work(spark, config) -> str:
    stats = run_tensorize(spark, config)
    return f"tensorized {stats['counts']} -> {config.paths.tensors}"


if __name__ == "__main__":
    sys.exit(run_job("tensorize", __doc__, work))
