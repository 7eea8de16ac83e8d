"""
### image_training: raw images -> curated Parquet -> tensors -> Keras CNN -> evaluated, published model

One run is one **dataset version**: the `version` parameter, or the run's logical date (`YYYYMMDD`)
when it is left empty, so the daily schedule and backfills each get their own partitions.

| task | does | writes under the storage root |
|---|---|---|
| `resolve` | validates every parameter, refuses unknown ones | `configs/<dataset>/<version>/<hash>.json` |
| `wait_for_raw_drop` | waits for the drop's `_SUCCESS` | |
| `ingest` | Spark + OpenCV decode, bad files quarantined | `curated/<dataset>/<version>/` |
| `tensorize` | deterministic splits, uint8 tensor shards | `tensors/<dataset>/<version>/` |
| `train` | Keras CNN, checkpoint per epoch, resumes on retry | `runs/<model>/<run id>/` |
| `evaluate` | test metrics, plots, champion comparison, blessing | `runs/<model>/<run id>/evaluation/` |
| `check_blessed` | skips publishing (and says why) when not blessed | |
| `publish` | next integer version, TF Serving layout, `LATEST` | `models/<model>/<version>/` |
| `announce` | the `sparkvision_published_models` Asset event (triggers `batch_inference`) | |

Runs wait for their drop without holding a worker slot (deferrable sensor on file://, reschedule
mode on HDFS) and fail with the missing path when it never arrives; they never hold back a run of
another version. Spark jobs share one pool (`sparkvision_spark`, the cores' limit), taken first by
the run furthest along, then by the earliest logical date: backfills publish in date order.

`resolve` writes the **run config** (every parameter and the identities derived from them) and
passes only its URI on; every Spark job reads it (`--run-config`). The run id covers the ingest,
split and training parameters, and each output records the fingerprint of what made it, so a
re-run with other parameters never scores an old model on new data.

A model that is not blessed stays in `runs/<model>/<run id>/`: `check_blessed` logs the reason and
skips `publish` and `announce`. Roll `LATEST` back with
`spark-submit spark_jobs/rollback.py --root <root> --model <model> --to <version>`.

The storage root (`SPARKVISION_ROOT`: `file://...` or `hdfs://...`) and the Spark master
(`AIRFLOW_CONN_SPARK_DEFAULT`) are deployment settings; this file does not change between a
laptop and a cluster.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, task

from sparkvision.orchestration.assets import published_models
from sparkvision.orchestration.form import dag_params
from sparkvision.orchestration.tasks import DEFAULT_ARGS, artifact_sensor, dag_macros, spark_job
from sparkvision.platform import settings

ROOT = settings.storage_root()
PUBLISHED_MODELS = published_models(ROOT)

with DAG(
    dag_id="image_training",
    description="Ingest, tensorize, train, evaluate and publish an image classifier for one dataset version",
    doc_md=__doc__,
    schedule="@daily",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    default_args=DEFAULT_ARGS,  # no max_active_runs=1: see DEFAULT_ARGS
    tags=["sparkvision", "training"],
    params=dag_params(),
    user_defined_macros=dag_macros(),
) as dag:

    @task
    def resolve(params: dict, logical_date=None, dag_run=None) -> str:
        """Validate the run's parameters, commit its run config and pass on the config's URI."""
        from sparkvision.orchestration.runs import resolve_run_config

        return resolve_run_config(ROOT, params, logical_date or dag_run.run_after)

    @task.short_circuit
    def check_blessed(run_config: str) -> bool:
        """Publish only a blessed model; otherwise say why and skip publishing."""
        from sparkvision.orchestration.runs import run_outcome

        metrics = run_outcome(run_config, "evaluation")
        if metrics["blessed"]:
            print(f"BLESSED: {metrics['reason']}")
        else:
            print(f"NOT BLESSED, not publishing: {metrics['reason']}. The model stays in {metrics['run_uri']}/")
        return bool(metrics["blessed"])

    @task(outlets=[PUBLISHED_MODELS])
    def announce(run_config: str, outlet_events=None) -> dict:
        """Emit the Asset event for the version this run published (skipped when nothing new)."""
        from airflow.sdk.exceptions import AirflowSkipException

        from sparkvision.orchestration.runs import run_outcome

        published = run_outcome(run_config, "published")
        if not published["new"]:
            raise AirflowSkipException(f"no new model version: {published['reason']}")
        outlet_events[PUBLISHED_MODELS].extra = {
            key: published[key] for key in ("model", "version", "uri", "run_id", "test_accuracy")
        }
        print(f"announced {published['model']} version {published['version']} at {published['uri']}")
        return published

    run_config = resolve()
    (
        run_config
        >> artifact_sensor("wait_for_raw_drop", ROOT, "raw")
        >> spark_job("ingest", "ingest")
        >> artifact_sensor("wait_for_curated", ROOT, "curated")
        >> spark_job("tensorize", "tensorize")
        >> artifact_sensor("wait_for_tensors", ROOT, "tensors")
        >> spark_job("train", "train")
        >> artifact_sensor("wait_for_run", ROOT, "run")
        >> spark_job("evaluate", "evaluate")
        >> artifact_sensor("wait_for_evaluation", ROOT, "evaluation")
        >> check_blessed(run_config)
        >> spark_job("publish", "publish")
        >> announce(run_config)
    )
