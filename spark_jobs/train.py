"""Train the Keras CNN on a tensorized dataset version, on the executors.

    spark-submit spark_jobs/train.py --run-config <root>/configs/<dataset>/<version>/<hash>.json
    spark-submit spark_jobs/train.py version=v1 [architecture=reference epochs=3 workers=2 ...]

The driver only launches it: ``sparkvision.training.train`` runs one Spark barrier stage of
``workers`` TensorFlow workers (synchronous data-parallel) and commits their checkpoints. A
retried task, or a barrier stage Spark retries after losing an executor, resumes from the run's
last per-epoch checkpoint (the log says at which epoch).

Reads  <root>/tensors/<dataset>/<version>/ (closed by _SUCCESS); writes
<root>/runs/<model>/<run id>/ with the checkpoint, history, model.keras, export/ and _SUCCESS.
"""

from __future__ import annotations

import sys

from sparkvision.config.cli import run_job
from sparkvision.platform.storage import HadoopFS
from sparkvision.training.train import train


def work(spark, config) -> str:
    summary = train(HadoopFS(spark), config)
    return (
        f"trained run {summary['run_id']} -> {summary['run_uri']}: {summary['epochs']} epochs "
        f"(resumed at {summary['resumed_at_epoch']}), best epoch {summary['best_epoch']}, "
        f"{summary.get('workers', 1)} worker(s)"
    )


if __name__ == "__main__":
    sys.exit(run_job("train", __doc__, work))
