"""Publish a blessed run as the next model version (TF Serving layout), then point LATEST at it.

    spark-submit spark_jobs/publish.py --run-config <root>/configs/<dataset>/<version>/<hash>.json
    spark-submit spark_jobs/publish.py version=v1 [model=fashion_cnn ...]

Writes <root>/models/<model>/<version>/ and then <root>/models/<model>/LATEST; exit status 3
when the run is not blessed. The Airflow run id that Airflow exports to the task
(AIRFLOW_CTX_DAG_RUN_ID) goes into the version's lineage. Roll back with spark_jobs/rollback.py.
"""

from __future__ import annotations

import os
import sys

from sparkvision.config.cli import run_job
from sparkvision.platform.storage import HadoopFS
from sparkvision.registry.publish import publish


def work(spark, config) -> str:
    result = publish(HadoopFS(spark), config.model_paths, config.run_id, os.environ.get("AIRFLOW_CTX_DAG_RUN_ID"))
    return f"{'published' if result['new'] else 'unchanged'}: {result['uri']} ({result['reason']})"


if __name__ == "__main__":
    sys.exit(run_job("publish", __doc__, work))
