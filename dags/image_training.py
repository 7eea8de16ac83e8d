"""
### image_training: raw images -> curated Parquet -> tensors -> Keras CNN -> evaluated, published model

One run is one **dataset version**: the `version` parameter, or the run's logical date (`YYYYMMDD`)
when it is left empty, so the daily schedule and backfills each get their own partitions.

| task | does | writes under the storage root |
|---|---|---|
| `resolve` | validates every parameter before any path is built | nothing |
| `wait_for_raw_drop` | waits for the drop's `_SUCCESS` | |
| `ingest` | Spark + OpenCV decode, bad files quarantined | `curated/<dataset>/<version>/` |
| `tensorize` | deterministic splits, uint8 tensor shards | `tensors/<dataset>/<version>/` |
| `train` | Keras CNN, checkpoint per epoch, resumes on retry | `runs/<model>/<run id>/` |
| `evaluate` | test metrics, plots, champion comparison, blessing | `runs/<model>/<run id>/evaluation/` |
| `check_blessed` | skips publishing (and says why) when not blessed | |
| `publish` | next integer version, TF Serving layout, `LATEST` | `models/<model>/<version>/` |
| `announce` | the `sparkvision_published_models` Asset event, extra = model, version, uri | |

A model that is not blessed stays in `runs/<model>/<run id>/`: `check_blessed` logs the reason and
skips `publish` and `announce`. Roll `LATEST` back with
`spark-submit spark_jobs/publish.py --root <root> --model <model> --rollback-to <version>`.

The storage root (`SPARKVISION_ROOT`: `file://...` or `hdfs://...`) and the Spark master
(`AIRFLOW_CONN_SPARK_DEFAULT`) are deployment settings; this file does not change between a
laptop and a cluster.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Asset, Param, task

from sparkvision import settings
from sparkvision.layout import SAFE_NAME_PATTERN, ModelPaths
from sparkvision.orchestration import artifact_sensor, spark_job, xcom
from sparkvision.params import (
    ARCHITECTURES,
    DEFAULT_DATASET,
    DEFAULT_MODEL,
    INGEST_DEFAULTS,
    RESIZE_POLICIES,
    EvalParams,
    TrainParams,
)

ROOT = settings.storage_root()
TRAIN = TrainParams()
EVAL = EvalParams()
PUBLISHED_MODELS = Asset(name="sparkvision_published_models", uri=f"{ROOT}/models/")

R = {key: xcom("resolve", key) for key in ("dataset", "version", "model", "run_id")}
DATASET_ARGS = ["--root", ROOT, "--dataset", R["dataset"], "--version", R["version"]]
RUN_DIR = f"runs/{R['model']}/{R['run_id']}"

with DAG(
    dag_id="image_training",
    description="Ingest, tensorize, train, evaluate and publish an image classifier for one dataset version",
    doc_md=__doc__,
    schedule="@daily",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "sparkvision", "retries": 1, "retry_delay": timedelta(seconds=30)},
    tags=["sparkvision", "training"],
    params={
        "dataset": Param(
            DEFAULT_DATASET,
            type="string",
            pattern=SAFE_NAME_PATTERN,
            description="Dataset name: the folder under <root>/raw/",
        ),
        "version": Param(
            None,
            type=["null", "string"],
            pattern=SAFE_NAME_PATTERN,
            description="Dataset version; empty means the run's logical date (YYYYMMDD)",
        ),
        "model": Param(DEFAULT_MODEL, type="string", pattern=SAFE_NAME_PATTERN, description="Model name"),
        "image_shape": Param(
            "28x28x1",
            type="string",
            pattern=r"^[0-9]{1,4}x[0-9]{1,4}x[13]$",
            description="Target HEIGHTxWIDTHxCHANNELS (1 grey, 3 colour)",
        ),
        "max_rejected_share": Param(
            0.05,
            type="number",
            minimum=0,
            maximum=1,
            description="Fail ingest when more than this share of files is rejected",
        ),
        "resize_policy": Param(
            INGEST_DEFAULTS["resize_policy"],
            type="string",
            enum=list(RESIZE_POLICIES),
            description="How images reach the target shape: stretch, pad (letterbox) or crop (centre)",
        ),
        "drop_duplicates": Param(
            INGEST_DEFAULTS["drop_duplicates"],
            type="boolean",
            description="Quarantine files whose content repeats an earlier file (always flagged)",
        ),
        "drift_threshold": Param(
            INGEST_DEFAULTS["drift_threshold"],
            type="number",
            minimum=0,
            maximum=1,
            description="Warn when the label distribution moved more than this since the previous version",
        ),
        "architecture": Param(TRAIN.architecture, type="string", enum=list(ARCHITECTURES)),
        "epochs": Param(TRAIN.epochs, type="integer", minimum=1, maximum=1000),
        "batch_size": Param(TRAIN.batch_size, type="integer", minimum=1, maximum=65536),
        "learning_rate": Param(
            TRAIN.learning_rate,
            type="number",
            exclusiveMinimum=0,
            exclusiveMaximum=1,
            description="Peak learning rate (cosine decay over the epochs)",
        ),
        "augment": Param(TRAIN.augment, type="boolean", description="Random flips and shifts of the training images"),
        "early_stopping_patience": Param(
            TRAIN.early_stopping_patience,
            type="integer",
            minimum=0,
            maximum=1000,
            description="Stop after this many epochs without a validation accuracy gain (0: never)",
        ),
        "max_train_minutes": Param(
            TRAIN.max_train_minutes,
            type="number",
            minimum=0,
            maximum=10080,
            description="Training time budget in minutes (0: none)",
        ),
        "min_accuracy": Param(
            EVAL.min_accuracy,
            type="number",
            minimum=0,
            maximum=1,
            description="Bless only models with at least this test accuracy",
        ),
        "max_regression": Param(
            EVAL.max_regression,
            type="number",
            minimum=0,
            maximum=1,
            description="... and at most this much worse than the published champion",
        ),
    },
) as dag:

    @task
    def resolve(params: dict, logical_date=None, dag_run=None) -> dict:
        """Validate the run's parameters and name its dataset version and training run."""
        from sparkvision.runconfig import resolve_run

        when = logical_date or dag_run.run_after
        return resolve_run(ROOT, params, when)

    resolved = resolve()
    wait_for_raw_drop = artifact_sensor("wait_for_raw_drop", ROOT, f"raw/{R['dataset']}/{R['version']}/_SUCCESS")
    ingest = spark_job(
        "ingest",
        "ingest",
        [
            *DATASET_ARGS,
            "--image-shape",
            "{{ params.image_shape }}",
            "--max-rejected-share",
            "{{ params.max_rejected_share }}",
            "--resize-policy",
            "{{ params.resize_policy }}",
            "--drift-threshold",
            "{{ params.drift_threshold }}",
            "{{ '--drop-duplicates' if params.drop_duplicates else '--no-drop-duplicates' }}",
        ],
    )
    wait_for_curated = artifact_sensor("wait_for_curated", ROOT, f"curated/{R['dataset']}/{R['version']}/_SUCCESS")
    tensorize = spark_job("tensorize", "tensorize", DATASET_ARGS)
    wait_for_tensors = artifact_sensor("wait_for_tensors", ROOT, f"tensors/{R['dataset']}/{R['version']}/_SUCCESS")
    train = spark_job(
        "train",
        "train",
        [
            *DATASET_ARGS,
            "--model",
            R["model"],
            "--run-id",
            R["run_id"],
            "--architecture",
            "{{ params.architecture }}",
            "--epochs",
            "{{ params.epochs }}",
            "--batch-size",
            "{{ params.batch_size }}",
            "--learning-rate",
            "{{ params.learning_rate }}",
            "{{ '--augment' if params.augment else '--no-augment' }}",
            "--early-stopping-patience",
            "{{ params.early_stopping_patience }}",
            "--max-train-minutes",
            "{{ params.max_train_minutes }}",
        ],
    )
    wait_for_run = artifact_sensor("wait_for_run", ROOT, f"{RUN_DIR}/_SUCCESS")
    evaluate = spark_job(
        "evaluate",
        "evaluate",
        [
            *DATASET_ARGS,
            "--model",
            R["model"],
            "--run-id",
            R["run_id"],
            "--min-accuracy",
            "{{ params.min_accuracy }}",
            "--max-regression",
            "{{ params.max_regression }}",
        ],
    )
    wait_for_evaluation = artifact_sensor("wait_for_evaluation", ROOT, f"{RUN_DIR}/evaluation/_SUCCESS")

    @task.short_circuit
    def check_blessed(resolved_run: dict) -> bool:
        """Publish only a blessed model; otherwise say why and skip publishing."""
        from sparkvision.orchestration import read_json

        run_dir = ModelPaths(ROOT, resolved_run["model"]).run(resolved_run["run_id"])
        metrics = read_json(f"{run_dir}/evaluation/metrics.json")
        if metrics["blessed"]:
            print(f"BLESSED: {metrics['reason']}")
        else:
            print(f"NOT BLESSED, not publishing: {metrics['reason']}. The model stays in {run_dir}/")
        return bool(metrics["blessed"])

    publish = spark_job(
        "publish",
        "publish",
        ["--root", ROOT, "--model", R["model"], "--run-id", R["run_id"], "--airflow-run-id", "{{ run_id }}"],
    )

    @task(outlets=[PUBLISHED_MODELS])
    def announce(resolved_run: dict, outlet_events=None) -> dict:
        """Emit the Asset event for the version this run published (skipped when nothing new)."""
        from airflow.sdk.exceptions import AirflowSkipException

        from sparkvision.orchestration import read_json

        run_dir = ModelPaths(ROOT, resolved_run["model"]).run(resolved_run["run_id"])
        published = read_json(f"{run_dir}/published.json")
        if not published["new"]:
            raise AirflowSkipException(f"no new model version: {published['reason']}")
        outlet_events[PUBLISHED_MODELS].extra = {
            key: published[key] for key in ("model", "version", "uri", "run_id", "test_accuracy")
        }
        print(f"announced {published['model']} version {published['version']} at {published['uri']}")
        return published

    (
        resolved
        >> wait_for_raw_drop
        >> ingest
        >> wait_for_curated
        >> tensorize
        >> wait_for_tensors
        >> train
        >> wait_for_run
        >> evaluate
        >> wait_for_evaluation
        >> check_blessed(resolved)
        >> publish
        >> announce(resolved)
    )
