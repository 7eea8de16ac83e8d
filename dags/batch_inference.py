"""
### batch_inference: score a batch of new images with a published model, on Spark

One run scores one **batch**: the unlabelled images under `<root>/incoming/<batch>/` (any nested
folders; lay a local folder out with `python -m sparkvision.ingest.drop FOLDER --batch NAME`), or,
with `curated_dataset`, a labelled curated version (then also accuracy and a confusion matrix).

| task | does | writes under `<root>/predictions/<model>/` |
|---|---|---|
| `resolve` | validates the parameters, picks the batch, pins the model version | `configs/<batch>/<hash>.json` |
| `wait_for_batch` | waits for the batch's `_SUCCESS` | |
| `score` | Spark: decode as ingest does (bad files quarantined), score on the executors | `<version>/<batch>/` |
| `wait_for_predictions` | waits for the predictions' `_SUCCESS` | |

**When it runs.** Daily (the batch is the logical date, `YYYYMMDD`), from the trigger form, and
whenever image_training publishes a new model version (the `sparkvision_published_models` Asset
event of its `announce` task): that run scores with the announced version the batch named by
`batch`, or, when it is empty, the newest complete batch under `incoming/`.

**Waiting** for the batch holds no worker slot (deferrable sensor on file://, reschedule mode on
HDFS), and a batch that never arrives fails with its path; scoring shares the `sparkvision_spark`
pool with image_training's Spark jobs.

**Model version.** Empty means the version `LATEST` points at when `resolve` runs; `resolve`
pins it, so a retried task scores with the same version. A version that is not published fails
`resolve` with the versions that are, before any Spark work. A batch already scored by that
version is not scored again unless `rescore` is set.

Output: `predictions.parquet` (path, content hash, id, predicted label and index, confidence,
top-k labels and probabilities, model, model version, batch), `rejects.parquet` (path, reason,
detail), `manifest.json` (counts, per-label predictions, confidence histogram, images/s), `_SUCCESS`.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, AssetOrTimeSchedule, CronTriggerTimetable, task

from sparkvision.config.params import SCORING_PARAMETERS
from sparkvision.orchestration.assets import published_models
from sparkvision.orchestration.form import dag_params
from sparkvision.orchestration.tasks import DEFAULT_ARGS, artifact_sensor, dag_macros, spark_job
from sparkvision.platform import settings

ROOT = settings.storage_root()

with DAG(
    dag_id="batch_inference",
    description="Score a batch of images with a published model on Spark: daily, on demand and on every new version",
    doc_md=__doc__,
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("@daily", timezone="UTC"), assets=[published_models(ROOT)]
    ),
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    default_args=DEFAULT_ARGS,  # no max_active_runs=1: see DEFAULT_ARGS
    tags=["sparkvision", "inference"],
    params=dag_params(SCORING_PARAMETERS),
    user_defined_macros=dag_macros(),
) as dag:

    @task
    def resolve(params: dict, logical_date=None, dag_run=None, triggering_asset_events=None) -> str:
        """Validate the parameters, pick the batch, pin the model version, commit the scoring config."""
        from sparkvision.orchestration.scoring import announced_model, resolve_scoring_config

        return resolve_scoring_config(
            ROOT, params, logical_date or dag_run.run_after, announced_model(triggering_asset_events)
        )

    (
        resolve()
        >> artifact_sensor("wait_for_batch", ROOT, "batch")
        >> spark_job("score", "score")
        >> artifact_sensor("wait_for_predictions", ROOT, "predictions")
    )
