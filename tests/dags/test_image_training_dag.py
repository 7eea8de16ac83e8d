"""The whole image_training DAG under `airflow dags test` on a file:// root (on HDFS and a Spark
cluster: tests/devtools/test_readme_cluster.py).

Each run uses a small slice of Fashion-MNIST and one short epoch: these tests check that every
stage runs on the real components and hands the next one what it needs, not model quality.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.rawdrop import lay_out
from sparkvision.platform.layout import DatasetPaths, ModelPaths
from tests.helpers import assert_published_model_predicts

pytestmark = pytest.mark.integration

SLICE = 150  # images per source split
FAST = {"architecture": "reference", "epochs": 1, "batch_size": 64, "min_accuracy": 0.0, "max_regression": 1.0}


@pytest.fixture
def airflow_home(tmp_path_factory):
    """A fresh SQLite Airflow home per test: each test has its own root, hence its own model Asset."""
    home = tmp_path_factory.mktemp("airflow")
    env = airflow_env(home, "file:///unused")
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True)
    return home


def airflow_env(home: Path, root: str) -> dict:
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "SPARKVISION_ROOT": root,
        "SPARKVISION_SENSOR_POKE_SECONDS": "1",
        "SPARKVISION_SENSOR_TIMEOUT_SECONDS": "300",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "2",
    }


def run_dag(home: Path, root: str, conf: dict, logical_date: str) -> str:
    """`airflow dags test image_training`; return its log, failing with the log's tail if the run failed."""
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "test", "image_training", logical_date, "-c", json.dumps(conf)],
        env=airflow_env(home, root),
        capture_output=True,
        text=True,
        timeout=900,
    )
    log = result.stdout + result.stderr
    finished = re.findall(r"DagRun Finished: .*?state=(\w+)", log)
    assert result.returncode == 0 and finished == ["success"], log[-6000:]
    return log


def test_dag_end_to_end_on_file_root_is_idempotent_and_versioned(hadoop_fs, airflow_home, tmp_path, spark):
    root = (tmp_path / "root").as_uri()
    lay_out(root, "fashion_mnist", "it1", limit=SLICE)
    run_dag(airflow_home, root, {"version": "it1", **FAST}, "2026-11-21")
    paths = DatasetPaths(root, "fashion_mnist", "it1")
    model_paths = ModelPaths(root, "fashion_cnn")
    assert_published_model_predicts(hadoop_fs, root, "it1", 1, tmp_path)
    curated_rows = spark.read.parquet(f"{paths.curated}/images.parquet").count()
    assert curated_rows == 2 * SLICE

    # the same version again: same outputs, no duplicated rows, no new model version
    log = run_dag(airflow_home, root, {"version": "it1", **FAST}, "2026-11-22")
    assert "already published as version 1; no new version" in log
    assert spark.read.parquet(f"{paths.curated}/images.parquet").count() == curated_rows
    assert sorted(hadoop_fs.list(model_paths.published)) == ["1", "LATEST"]
    assert len(hadoop_fs.list(model_paths.runs)) == 1

    # the same version with another image shape (and a seed): new curated data, tensors and run, a
    # model that takes the new shape, evaluated on the new tensors; the 28x28 champion is not
    # comparable, which the evaluation records instead of crashing
    reshaped = {"version": "it1", **FAST, "image_shape": "32x32x1", "seed": 7}
    log = run_dag(airflow_home, root, reshaped, "2026-11-25")
    assert re.search(r"published fashion_cnn as version 2: new run fashion_mnist-it1-\w+", log)
    manifest = hadoop_fs.read_json(f"{paths.curated}/manifest.json")
    assert manifest["image_shape"] == [32, 32, 1]
    lineage = hadoop_fs.read_json(f"{model_paths.version(2)}/lineage.json")
    metrics = hadoop_fs.read_json(f"{model_paths.version(2)}/metrics.json")
    first = hadoop_fs.read_json(f"{model_paths.version(1)}/lineage.json")
    assert lineage["run_id"] != first["run_id"] and metrics["run_id"] == lineage["run_id"]
    assert first["airflow_run_id"].startswith("manual__")  # exported by Airflow to the spark-submit
    assert lineage["curated_content_hash"] == manifest["content_hash"] == metrics["curated_content_hash"]
    assert metrics["image_shape"] == [32, 32, 1] and metrics["champion"] is None
    assert metrics["champion_skipped"]["version"] == 1 and "not comparable" in metrics["reason"]
    assert lineage["train_params"]["run_config"]["params"]["train"]["seed"] == 7
    assert_published_model_predicts(hadoop_fs, root, "it1", 2, tmp_path, shape=(32, 32, 1))
    assert len([run for run in hadoop_fs.list(model_paths.runs) if not run.startswith(".")]) == 2


@pytest.mark.parametrize(
    ("conf", "refusal"),
    [
        ({"version": "v1\n"}, "version"),
        ({"version": "../x"}, "version"),
        ({"version": "v1", "epoch": 3}, "did you mean 'epochs'"),
    ],
    ids=["trailing-newline", "path", "misspelt"],
)
def test_hostile_or_unknown_parameters_are_refused_before_any_path_is_built(airflow_home, tmp_path, conf, refusal):
    root = (tmp_path / "root").as_uri()
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "test", "image_training", "2026-11-24", "-c", json.dumps(conf)],
        env=airflow_env(airflow_home, root),
        capture_output=True,
        text=True,
        timeout=300,
    )
    log = result.stdout + result.stderr
    assert refusal in log, log[-4000:]
    assert re.findall(r"DagRun Finished: .*?state=(\w+)", log) in ([], ["failed"]), log[-4000:]
    assert "state=success" not in log
    assert not (tmp_path / "root").exists()  # nothing written, no path built
