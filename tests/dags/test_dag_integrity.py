"""DAG integrity: every DAG file imports cleanly and follows the project's rules. No services needed."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys

import pytest

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
sensors = [t for t in dag.tasks if t.task_id.startswith("wait_for")]
print(json.dumps({{
    "sensors": {{t.task_id: type(t).__name__ for t in sensors}},
    "waiting": sorted({{(getattr(t, "deferrable", False), t.mode) for t in sensors}}),
    "raw_path": dag.get_task("wait_for_raw_drop").filepath,
    "macros": sorted(dag.user_defined_macros),
    "heavy": [m for m in {HEAVY_MODULES!r} if m in sys.modules],
}}))
"""
    env = {**os.environ, "SPARKVISION_ROOT": env_root}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_dag_file_imports_nothing_heavy_and_uses_a_file_sensor_on_a_local_root():
    parsed = _parse_in_subprocess("file:///srv/sparkvision")
    assert parsed["heavy"] == []
    assert set(parsed["sensors"].values()) == {"ArtifactFileSensor"}
    assert parsed["waiting"] == [[True, "poke"]]  # deferred: the triggerer waits, no worker slot held
    assert parsed["raw_path"] == "{{ artifact(ti.xcom_pull(task_ids='resolve'), 'raw') }}"
    assert parsed["macros"] == ["artifact"]


def test_dag_uses_webhdfs_sensors_on_an_hdfs_root():
    parsed = _parse_in_subprocess("hdfs://namenode:8020/sparkvision")
    assert set(parsed["sensors"].values()) == {"ArtifactWebHdfsSensor"}
    assert parsed["waiting"] == [[False, "reschedule"]]  # poke-only sensor: the slot is free between pokes


def test_params_form_refuses_unsafe_names(dagbag):
    version = dagbag.dags["image_training"].params.get_param("version")
    assert version.resolve("v2026-11") == "v2026-11"
    assert version.resolve(None) is None  # empty: the run's logical date
    for bad in ("../etc", "a/b", "", " v1", "x" * 65, "v1\n", "v1\n\n"):
        with pytest.raises(Exception, match=r"does not match|Invalid|not valid"):
            version.resolve(bad)


def test_form_is_generated_from_the_declarations_with_a_description_for_every_field(dagbag):
    from sparkvision.config.params import PARAMETERS

    params = dagbag.dags["image_training"].params
    assert list(params.keys()) == [p.name for p in PARAMETERS]
    for declared in PARAMETERS:
        param = params.get_param(declared.name)
        assert param.value == declared.default, declared.name
        assert param.description == declared.help and param.schema["section"] == declared.section


def test_runs_do_not_queue_behind_each_other_and_spark_jobs_share_one_pool(dagbag):
    """No max_active_runs=1 (a run waiting for its drop would hold back every other version);
    the cores' limit is the Spark pool, taken by the run furthest along (upstream weights)."""
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    from sparkvision.platform import settings

    for dag in dagbag.dags.values():
        assert dag.max_active_runs > 1, dag.dag_id
        for task in dag.tasks:
            assert str(task.weight_rule).lower().endswith("upstream"), (dag.dag_id, task.task_id)
            if isinstance(task, SparkSubmitOperator):
                assert task.pool == settings.spark_pool(), (dag.dag_id, task.task_id)
            else:
                assert task.pool != settings.spark_pool(), (dag.dag_id, task.task_id)
    dag = dagbag.dags["image_training"]
    links = {t.task_id: [link.name for link in t.operator_extra_links] for t in dag.tasks if t.operator_extra_links}
    assert links == {"evaluate": ["Evaluation report"], "publish": ["Published model version"]}
