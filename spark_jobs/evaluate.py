"""Evaluate a trained run on the test split and decide whether it is blessed.

    spark-submit spark_jobs/evaluate.py --run-config <root>/configs/<dataset>/<version>/<hash>.json
    spark-submit spark_jobs/evaluate.py version=v1 [min_accuracy=0.9 ...]

Reads the run and <root>/tensors/<dataset>/<version>/test/; writes <root>/runs/<model>/<run id>/evaluation/
(metrics.json with `blessed` and the reason, plots, report.html, _SUCCESS).
"""

from __future__ import annotations

import sys

from sparkvision.config.cli import run_job
from sparkvision.evaluation.evaluate import evaluate


def work(spark, config) -> str:
    metrics = evaluate(spark, config)
    verdict = "blessed" if metrics["blessed"] else "NOT blessed"
    return f"test accuracy {metrics['accuracy']:.4f}: {verdict} ({metrics['reason']})"


if __name__ == "__main__":
    sys.exit(run_job("evaluate", __doc__, work))
