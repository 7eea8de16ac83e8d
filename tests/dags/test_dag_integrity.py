"""DAG integrity: every DAG file imports cleanly and follows the project's rules. No services needed."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from datetime import UTC

import pytest

from sparkvision.runconfig import InvalidRunParams, resolve_run

HEAVY_MODULES = ("tensorflow", "keras", "cv2", "pandas", "pyspark", "pyarrow", "numpy")
EXPECTED_ORDER = [
    "resolve",
    "wait_for_raw_drop",
    "ingest",
    "wait_for_curated",
    "tensorize",
    "wait_for_tensors",
    "train",
    "wait_for_run",
    "evaluate",
    "wait_for_evaluation",
    "check_blessed",
    "publish",
    "announce",
]


@pytest.fixture(scope="module")
def dagbag(project_dir):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(project_dir / "dags"))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert "image_training" in dagbag.dags


def test_every_dag_has_tags_owner_retries_and_docs(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.doc_md, f"{dag_id} has no doc_md"
        for task in dag.tasks:
            assert task.owner not in ("", "airflow"), f"{dag_id}.{task.task_id} has no real owner"
            assert task.retries >= 1, f"{dag_id}.{task.task_id} has no retries"


def test_image_training_is_one_chain_in_stage_order(dagbag):
    dag = dagbag.dags["image_training"]
    assert sorted(t.task_id for t in dag.tasks) == sorted(EXPECTED_ORDER)
    takes_resolved_run = {"check_blessed", "announce"}  # @task functions that read resolve's XCom
    for upstream, downstream in itertools.pairwise(EXPECTED_ORDER):
        expected = {upstream} | ({"resolve"} if downstream in takes_resolved_run else set())
        assert dag.get_task(downstream).upstream_task_ids == expected, downstream


def test_spark_tasks_use_the_spark_connection_and_project_jobs(dagbag, project_dir):
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    dag = dagbag.dags["image_training"]
    spark_tasks = [t for t in dag.tasks if isinstance(t, SparkSubmitOperator)]
    assert {t.task_id for t in spark_tasks} == {"ingest", "tensorize", "train", "evaluate", "publish"}
    for task in spark_tasks:
        assert task._conn_id == "spark_default"
        assert (project_dir / "spark_jobs" / f"{task.task_id}.py").as_posix() == task.application


def _parse_in_subprocess(env_root: str) -> dict:
    """Import the DAG file in a fresh interpreter: which sensors it built and what it imported."""
    code = f"""
import json, sys, runpy
ns = runpy.run_path({str(os.path.join(os.path.dirname(__file__), "..", "..", "dags", "image_training.py"))!r})
dag = ns["dag"]
print(json.dumps({{
    "sensors": {{t.task_id: type(t).__name__ for t in dag.tasks if t.task_id.startswith("wait_for")}},
    "raw_path": dag.get_task("wait_for_raw_drop").filepath,
    "heavy": [m for m in {HEAVY_MODULES!r} if m in sys.modules],
}}))
"""
    env = {**os.environ, "SPARKVISION_ROOT": env_root}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_dag_file_imports_nothing_heavy_and_uses_a_file_sensor_on_a_local_root():
    parsed = _parse_in_subprocess("file:///srv/sparkvision")
    assert parsed["heavy"] == []
    assert set(parsed["sensors"].values()) == {"FileSensor"}
    assert parsed["raw_path"].startswith("/srv/sparkvision/raw/")


def test_dag_uses_webhdfs_sensors_on_an_hdfs_root():
    parsed = _parse_in_subprocess("hdfs://namenode:8020/sparkvision")
    assert set(parsed["sensors"].values()) == {"WebHdfsSensor"}
    assert parsed["raw_path"].startswith("/sparkvision/raw/")  # WebHDFS takes the path, not the URI


def test_params_form_refuses_unsafe_names(dagbag):
    version = dagbag.dags["image_training"].params.get_param("version")
    assert version.resolve("v2026-11") == "v2026-11"
    assert version.resolve(None) is None  # empty: the run's logical date
    for bad in ("../etc", "a/b", "", " v1", "x" * 65):
        with pytest.raises(Exception, match=r"does not match|Invalid|not valid"):
            version.resolve(bad)


def test_resolve_run_derives_version_from_logical_date_and_refuses_bad_values():
    from datetime import datetime

    from sparkvision.params import EvalParams, TrainParams

    base = {
        "dataset": "fashion_mnist",
        "version": None,
        "model": "fashion_cnn",
        "image_shape": "28x28x1",
        "max_rejected_share": 0.05,
        "resize_policy": "stretch",
        "drop_duplicates": False,
        "drift_threshold": 0.1,
        "architecture": TrainParams.architecture,
        "epochs": 2,
        "batch_size": 64,
        "learning_rate": 0.001,
        "min_accuracy": EvalParams.min_accuracy,
        "max_regression": 0.01,
    }
    resolved = resolve_run("file:///r", base, datetime(2026, 11, 24, tzinfo=UTC))
    assert resolved["version"] == "20261124"
    assert resolved["run_id"].startswith("fashion_mnist-20261124-")
    again = resolve_run("file:///r", base, datetime(2026, 11, 24, tzinfo=UTC))
    assert again == resolved  # a retried or re-run task resolves to the same run
    for key, value in [
        ("dataset", "../x"),
        ("version", "a b"),
        ("model", ""),
        ("image_shape", "28x28"),
        ("max_rejected_share", 2),
        ("epochs", 0),
        ("architecture", "resnet"),
        ("resize_policy", "zoom"),
        ("drift_threshold", -0.1),
    ]:
        with pytest.raises(InvalidRunParams, match="refusing"):
            resolve_run("file:///r", {**base, key: value}, datetime(2026, 11, 24, tzinfo=UTC))
