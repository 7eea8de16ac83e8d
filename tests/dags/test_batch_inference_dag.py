"""The batch_inference DAG: its shape and schedule, whole runs on file:// and HDFS, the Asset trigger.

The runs use ``airflow dags test`` (tasks in one process, the real sensors and spark-submit) and
the session's small published model. The Asset test goes through Airflow's own path: the
published-models event, the consumer queue, the scheduler creating an asset-triggered run, and
that run's ``resolve`` task reading the event.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sparkvision.ingest.drop import drop_folder
from sparkvision.platform.layout import PREDICTION_MANIFEST, SUCCESS, uri_path
from tests.serving.helpers import published_root, write_bad_batch

TASKS = ["resolve", "wait_for_batch", "score", "wait_for_predictions"]


@pytest.fixture(scope="module")
def dagbag(project_dir):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(project_dir / "dags"))


def test_the_dag_is_one_chain_scheduled_daily_and_by_the_published_models_asset(dagbag):
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
    from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable

    from sparkvision.config.params import SCORING_PARAMETERS

    dag = dagbag.dags["batch_inference"]
    assert [t.task_id for t in dag.topological_sort()] == TASKS
    for upstream, downstream in itertools.pairwise(TASKS):
        assert dag.get_task(downstream).upstream_task_ids == {upstream}
    score = dag.get_task("score")
    assert isinstance(score, SparkSubmitOperator) and score.application.endswith("spark_jobs/score.py")
    schedule = dag.timetable
    assert isinstance(schedule, AssetOrTimeSchedule) and isinstance(schedule.timetable, CronTriggerTimetable)
    assert schedule.timetable.expression == "0 0 * * *"
    # the Asset it waits for is the very one image_training's announce emits
    (announced,) = dagbag.dags["image_training"].get_task("announce").outlets
    assert list(schedule.asset_condition.objects) == [announced]
    assert list(dag.params.keys()) == [p.name for p in SCORING_PARAMETERS]
    assert dag.params.get_param("model_version").resolve(None) is None
    for bad in ("../x", "b1\n"):
        with pytest.raises(Exception, match=r"does not match|Invalid|not valid"):
            dag.params.get_param("batch").resolve(bad)


def test_the_score_task_renders_a_command_that_the_scoring_job_parses(dagbag, tmp_path, monkeypatch):
    import importlib.util

    from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook

    from sparkvision.config.cli import job_parser, parse_job_args
    from sparkvision.config.scoring import ScoringConfig
    from sparkvision.orchestration.io import commit_new

    monkeypatch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", json.dumps({"conn_type": "spark", "host": "local[*]"}))
    config = ScoringConfig.build((tmp_path / "root").as_uri(), {"batch": "b1", "top_k": 5}).pinned(2)
    uri = commit_new(config.uri, config.to_json())
    dag = dagbag.dags["batch_inference"]
    task = dag.get_task("score")

    class TaskInstance:
        def xcom_pull(self, task_ids):
            assert task_ids == "resolve"
            return uri

    task.render_template_fields({"ti": TaskInstance()}, jinja_env=dag.get_template_env())
    hook = SparkSubmitHook(
        conf=task.conf, conn_id=task._conn_id, name=task.name, application_args=task.application_args
    )
    command = hook._build_spark_submit_command(task.application)
    job_args = command[command.index(task.application) + 1 :]
    spec = importlib.util.spec_from_file_location("score_job", task.application)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    parsed = parse_job_args(job_parser(module.__doc__, ScoringConfig), job_args, ScoringConfig)
    assert parsed == (uri, None)
    for sensor, artifact in (("wait_for_batch", "batch"), ("wait_for_predictions", "predictions")):
        rendered = dag.get_task(sensor)
        rendered.render_template_fields({"ti": TaskInstance()}, jinja_env=dag.get_template_env())
        assert rendered.filepath == uri_path(config.artifact(artifact)), sensor


# -- whole runs ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def airflow_env(home: Path, root: str, hdfs=None) -> dict:
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "SPARKVISION_ROOT": root,
        "SPARKVISION_SENSOR_POKE_SECONDS": "1",
        "SPARKVISION_SENSOR_TIMEOUT_SECONDS": "120",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        # no task may reach another Airflow on this machine: the scheduler's executor finds nobody
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{free_port()}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
    }
    if hdfs is not None:
        env["AIRFLOW_CONN_WEBHDFS_DEFAULT"] = hdfs.airflow_connection
    return env


def airflow(env: dict, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "airflow", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def airflow_home(tmp_path):
    home = tmp_path / "airflow"
    done = airflow(airflow_env(home, "file:///unused"), "db", "migrate")
    assert done.returncode == 0, done.stderr[-3000:]
    return home


def dags_test(home: Path, root: str, conf: dict, logical_date: str, hdfs=None) -> tuple[list[str], str]:
    env = airflow_env(home, root, hdfs)
    done = airflow(env, "dags", "test", "batch_inference", logical_date, "-c", json.dumps(conf))
    log = done.stdout + done.stderr
    return re.findall(r"DagRun Finished: .*?state=(\w+)", log), log


@pytest.mark.integration
def test_the_dag_scores_a_batch_drop_named_by_the_logical_date(published_model, hadoop_fs, root, request, airflow_home,
                                                                tmp_path):  # fmt: skip
    """On file:// (FileSensor) and HDFS (WebHdfsSensor): drop, sense, score, sense; bad files quarantined."""
    hdfs = request.getfixturevalue("hdfs") if root.startswith("hdfs") else None
    root = published_root(hadoop_fs, published_model, root)
    expected = write_bad_batch(tmp_path / "batch")
    drop_folder(tmp_path / "batch", f"{root}/incoming/20261128", labelled=False, threads=4)

    finished, log = dags_test(airflow_home, root, {}, "2026-11-28", hdfs)
    assert finished == ["success"], log[-6000:]
    assert ("WebHdfsSensor" if hdfs else "FileSensor") in log
    output = f"{root}/predictions/fashion_cnn/1/20261128"
    assert hadoop_fs.exists(f"{output}/{SUCCESS}")
    manifest = hadoop_fs.read_json(f"{output}/{PREDICTION_MANIFEST}")
    bad = sum(reason is not None for reason in expected.values())
    counts = (manifest["files_found"], manifest["scored"], manifest["rejected"])
    assert counts == (len(expected), len(expected) - bad, bad)
    assert re.search(r"scored 4 images, rejected 3 with fashion_cnn version 1 \(", log)

    if hdfs is None:  # the same batch again: already scored by this version, left as it is (same code on HDFS)
        finished, log = dags_test(airflow_home, root, {"batch": "20261128"}, "2026-11-29")
        assert finished == ["success"] and "already scored by fashion_cnn version 1" in log, log[-4000:]


@pytest.mark.integration
def test_a_model_version_that_does_not_exist_fails_in_resolve_before_any_spark_work(published_model, airflow_home):
    root = published_model.root
    finished, log = dags_test(airflow_home, root, {"batch": "b1", "model_version": 7}, "2026-11-28")
    assert finished == ["failed"], log[-4000:]
    assert "model 'fashion_cnn' has no published version 7" in log and "published versions: 1" in log
    assert "starting task_id=score" not in log and "spark-submit" not in log
    assert not Path(uri_path(f"{root}/predictions/fashion_cnn/7")).exists()


REST_CLIENT = textwrap.dedent(
    """
    import json, sys
    from fastapi.testclient import TestClient
    from airflow.api_fastapi.app import create_app

    client = TestClient(create_app())
    (asset,) = client.get("/api/v2/assets", params={"name_pattern": "sparkvision_published_models"}).json()["assets"]
    event = client.post("/api/v2/assets/events", json={"asset_id": asset["id"], "extra": json.loads(sys.argv[1])})
    queued = client.get("/api/v2/dags/batch_inference/assets/queuedEvents").json()
    print(json.dumps({"asset": asset, "event": event.status_code, "queued": queued}))
    """
)


@pytest.mark.integration
def test_a_published_version_triggers_a_scoring_run_through_the_asset(published_model, hadoop_fs, airflow_home,
                                                                       tmp_path):  # fmt: skip
    """Airflow's own path: the event announce emits, queued for batch_inference, a run made by the scheduler."""
    root = published_root(hadoop_fs, published_model, (tmp_path / "root").as_uri())  # its own incoming/
    for name in ("20261101", "20261102"):  # two complete batches and a newer, incomplete one
        drop_folder(Path(uri_path(published_model.paths.raw)) / "bag", f"{root}/incoming/{name}", labelled=False)
    Path(uri_path(f"{root}/incoming/20261103")).mkdir(parents=True)
    env = airflow_env(airflow_home, root)
    assert airflow(env, "dags", "reserialize").returncode == 0

    # what image_training's announce emits for a new version (model, version, uri, ...)
    extra = {"model": "fashion_cnn", "version": 1, "uri": f"{root}/models/fashion_cnn/1"}
    done = subprocess.run([sys.executable, "-c", REST_CLIENT, json.dumps(extra)], env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    api = json.loads(done.stdout.strip().splitlines()[-1])
    assert [d["dag_id"] for d in api["asset"]["scheduled_dags"]] == ["batch_inference"]
    assert [(t["dag_id"], t["task_id"]) for t in api["asset"]["producing_tasks"]] == [("image_training", "announce")]
    assert api["event"] == 200 and [q["dag_id"] for q in api["queued"]["queued_events"]] == ["batch_inference"]

    # one scheduler loop turns the queued event into an asset-triggered run
    scheduled = airflow(env, "scheduler", "--num-runs", "1", timeout=300)
    assert "Created asset-triggered DagRun for 'batch_inference'" in scheduled.stdout + scheduled.stderr
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        runs = db.execute("SELECT run_id, run_type FROM dag_run WHERE dag_id = 'batch_inference'").fetchall()
    (run_id,) = [run_id for run_id, run_type in runs if run_type == "asset_triggered"]

    # that run's resolve scores the announced version on the newest complete batch
    resolved = airflow(env, "tasks", "test", "batch_inference", "resolve", run_id)
    log = resolved.stdout + resolved.stderr
    assert resolved.returncode == 0, log[-4000:]
    assert "triggered by a new version: fashion_cnn version 1" in log
    config = json.loads(re.search(r"^\{\n.*?^\}$", resolved.stdout, re.S | re.M).group(0))
    assert (config["model"], config["model_version"], config["batch"]) == ("fashion_cnn", 1, "20261102")
