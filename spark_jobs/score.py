"""Score a batch of images (or a labelled curated version) with a published model, on the executors.

    spark-submit spark_jobs/score.py --run-config <root>/predictions/<model>/configs/<batch>/<hash>.json
    spark-submit spark_jobs/score.py batch=20261129 [model=fashion_cnn model_version=3 top_k=5 rescore=true]
    spark-submit spark_jobs/score.py batch=v1 curated_dataset=fashion_mnist   # + accuracy, confusion matrix

Reads <root>/incoming/<batch>/ (closed by _SUCCESS; any nested folders, no labels needed) or
<root>/curated/<dataset>/<batch>/; writes <root>/predictions/<model>/<model version>/<batch>/
{predictions.parquet,rejects.parquet,manifest.json,_SUCCESS}. An empty model_version means LATEST.
A batch this model version already scored is left as it is unless rescore=true. Exit status 4
when the model version or the batch does not exist (said before any Spark work). See docs/serving.md.
"""

from __future__ import annotations

import sys

from sparkvision.config.cli import run_job
from sparkvision.config.scoring import ScoringConfig
from sparkvision.serving.batch import run_scoring


def work(spark, config) -> str:
    manifest = run_scoring(spark, config)
    where = config.pinned(manifest["model_version"]).output
    if manifest.get("skipped"):
        return (
            f"already scored by {manifest['model']} version {manifest['model_version']}: {where} "
            "(rescore=true scores it again)"
        )
    accuracy = f", accuracy {manifest['accuracy']:.4f}" if manifest.get("accuracy") is not None else ""
    return (
        f"scored {manifest['scored']} images, rejected {manifest['rejected']} with {manifest['model']} version "
        f"{manifest['model_version']} ({manifest['images_per_s']:,.0f} images/s{accuracy}) -> {where}"
    )


if __name__ == "__main__":
    sys.exit(run_job("score", __doc__, work, config_class=ScoringConfig))
