"""The seams between the DAG and the jobs: each task rendered as Airflow renders it, then read by its job.

No services: the DAG is parsed, a run config is committed to a local root, and the templates of
every Spark task and sensor are rendered with the DAG's own Jinja environment and macros.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from sparkvision.config.cli import job_parser, parse_job_args
from sparkvision.config.runconfig import RunConfig
from sparkvision.orchestration.io import commit_new
from sparkvision.platform.layout import uri_path

SPARK_CONN = json.dumps({"conn_type": "spark", "host": "local[*]"})


class FakeTaskInstance:
    """Answers the one XCom the templates pull: the run config's URI that ``resolve`` returned."""

    def __init__(self, run_config: str) -> None:
        self.run_config = run_config

    def xcom_pull(self, task_ids: str):
        assert task_ids == "resolve"
        return self.run_config


@pytest.fixture(scope="module")
def dag(project_dir, tmp_path_factory):
    import os

    from airflow.dag_processing.dagbag import DagBag

    root = (tmp_path_factory.mktemp("seams") / "root").as_uri()
    old = os.environ.get("SPARKVISION_ROOT")
    os.environ["SPARKVISION_ROOT"] = root
    try:
        bag = DagBag(dag_folder=str(project_dir / "dags"))
    finally:
        if old is None:
            os.environ.pop("SPARKVISION_ROOT")
        else:
            os.environ["SPARKVISION_ROOT"] = old
    assert bag.import_errors == {}
    return bag.dags["image_training"], root


@pytest.fixture(scope="module")
def committed(dag):
    _, root = dag
    config = RunConfig.build(root, {"version": "v7", "seed": 3, "image_shape": "32x32x1"})
    return config, commit_new(config.uri, config.to_json())


def _job_module(path: str):
    spec = importlib.util.spec_from_file_location(f"job_{Path(path).stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_spark_task_renders_a_command_that_its_job_parses(dag, committed, monkeypatch):
    from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    monkeypatch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", SPARK_CONN)
    dag_, _ = dag
    config, uri = committed
    spark_tasks = [t for t in dag_.tasks if isinstance(t, SparkSubmitOperator)]
    assert len(spark_tasks) == 5
    for task in spark_tasks:
        task.render_template_fields({"ti": FakeTaskInstance(uri)}, jinja_env=dag_.get_template_env())
        hook = SparkSubmitHook(
            conf=task.conf, conn_id=task._conn_id, name=task.name, application_args=task.application_args
        )
        command = hook._build_spark_submit_command(task.application)
        assert command[0] == "spark-submit" and command[command.index("--master") + 1] == "local[*]"
        job_args = command[command.index(task.application) + 1 :]
        assert job_args == ["--run-config", uri], task.task_id
        # The job's own parser takes exactly what the DAG renders, and the URI names this run.
        parsed_uri, built = parse_job_args(job_parser(_job_module(task.application).__doc__), job_args)
        assert (parsed_uri, built) == (uri, None)
        assert RunConfig.from_json(Path(uri_path(parsed_uri)).read_text()) == config


def test_every_sensor_waits_for_the_artifact_of_this_run(dag, committed):
    dag_, _ = dag
    config, uri = committed
    expected = {
        "wait_for_raw_drop": "raw",
        "wait_for_curated": "curated",
        "wait_for_tensors": "tensors",
        "wait_for_run": "run",
        "wait_for_evaluation": "evaluation",
    }
    for task_id, artifact in expected.items():
        task = dag_.get_task(task_id)
        task.render_template_fields({"ti": FakeTaskInstance(uri)}, jinja_env=dag_.get_template_env())
        assert task.filepath == uri_path(config.artifact(artifact)), task_id
    # the run id covers the ingest parameters: another image shape is another run directory
    assert config.run_id in dag_.get_task("wait_for_run").filepath
    other = RunConfig.build(config.root, {"version": "v7", "seed": 3})
    assert other.run_id != config.run_id and other.paths.curated == config.paths.curated


def test_hand_runs_parse_overrides_and_refuse_bad_ones(capsys):
    parser = job_parser("doc")
    uri, built = parse_job_args(parser, ["--root", "file:///data", "version=v1", "epochs=3", "augment=true"])
    assert uri is None and built.train.epochs == 3 and built.train.augment is True and built.root == "file:///data"
    for bad in (["version=v1", "epoch=3"], ["version=v1\n"], [], ["--run-config", "file:///x.json", "version=v1"]):
        with pytest.raises(SystemExit) as exit_info:
            parse_job_args(job_parser("doc"), bad)
        assert exit_info.value.code == 2
    assert "did you mean 'epochs'" in capsys.readouterr().err
