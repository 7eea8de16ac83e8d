"""Operators of the DAGs: artifact sensors and spark-submit tasks, configured from the settings.

Every task gets the run config's URI from the ``resolve`` task's XCom (``RUN_CONFIG``): the Spark
jobs as ``--run-config URI``, the sensors through the ``artifact`` macro of their path template.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sparkvision.platform import settings
from sparkvision.platform.layout import is_hdfs
from sparkvision.platform.storage import CLOSE_RETRY_DELAY_KEY

#: The run config's URI (what the ``resolve`` task returned) as a Jinja expression, and as a template.
RUN_CONFIG_EXPR = "ti.xcom_pull(task_ids='resolve')"
RUN_CONFIG = f"{{{{ {RUN_CONFIG_EXPR} }}}}"
#: default_args of both DAGs. No max_active_runs=1: a run waiting for its input holds no slot
#: (deferred sensor) and Spark work is serialised by the pool of ``spark_job``; "upstream" weights
#: let the run that is furthest along (then the earliest logical date) take the pool first, so
#: backfills finish in date order.
DEFAULT_ARGS: dict[str, Any] = {
    "owner": "sparkvision",
    "retries": 1,
    "retry_delay": timedelta(seconds=30),
    "weight_rule": "upstream",
}


def dag_macros() -> dict[str, Any]:
    """The DAG's ``user_defined_macros``: ``artifact(run_config_uri, name)`` for sensor paths."""
    from sparkvision.orchestration.runs import artifact_path

    return {"artifact": artifact_path}


#: The Spark settings of every job the DAGs submit (the orchestration bench's plain script uses them too).
SPARK_CONF = {
    "spark.log.level": "WARN",
    "spark.ui.showConsoleProgress": "false",
    f"spark.hadoop.{CLOSE_RETRY_DELAY_KEY}": "20",  # small-file writes to HDFS (see storage.py)
}

#: What each sensor waits for, in the words of its timeout message.
ARTIFACT_NAMES = {
    "raw": "the raw drop",
    "curated": "the curated data",
    "tensors": "the tensors",
    "run": "the training run",
    "evaluation": "the evaluation",
    "batch": "the batch drop",
    "predictions": "the predictions",
}
#: The drops users deliver (they may take days; the others follow a task of the same run).
DROPS = {"raw", "batch"}


def artifact_sensor(task_id: str, root: str, artifact: str, **kwargs: Any):
    """Wait for the ``_SUCCESS`` of one of the run's artifacts without holding a worker slot.

    On file:// a deferrable FileSensor (the triggerer watches the path); on HDFS a WebHdfsSensor in
    reschedule mode (it is poke-only: each poke is a short task, the slot is free in between).
    The drops (``DROPS``) wait ``drop_timeout_seconds``, the artifacts in between ``sensor_timeout_seconds``;
    a timeout fails the task at once, saying which artifact of which version never arrived.
    """
    from sparkvision.orchestration.sensors import ArtifactFileSensor, ArtifactWebHdfsSensor

    path = f"{{{{ artifact({RUN_CONFIG_EXPR}, {artifact!r}) }}}}"
    timeout = settings.drop_timeout_seconds() if artifact in DROPS else settings.sensor_timeout_seconds()
    common = {
        "what": ARTIFACT_NAMES[artifact],
        "filepath": path,
        "poke_interval": settings.sensor_poke_seconds(),
        "timeout": timeout,
        **kwargs,
    }
    if is_hdfs(root):
        return ArtifactWebHdfsSensor(
            task_id=task_id, webhdfs_conn_id=settings.webhdfs_conn_id(), mode="reschedule", **common
        )
    return ArtifactFileSensor(task_id=task_id, fs_conn_id=settings.fs_conn_id(), deferrable=True, **common)


def spark_job(task_id: str, job: str, **kwargs: Any):
    """A SparkSubmitOperator running ``spark_jobs/<job>.py --run-config <URI>`` (master: the connection).

    Every Spark job runs in the ``spark_pool()`` pool: how many run at once is the cores' decision,
    made once for the whole deployment, whatever the number of active runs. The evaluate and
    publish tasks link to their run's report and model version (``sparkvision.orchestration.links``).
    """
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    from sparkvision.orchestration.links import job_links

    conf = {**SPARK_CONF, **kwargs.pop("conf", {})}
    operator = SparkSubmitOperator(
        task_id=task_id,
        pool=settings.spark_pool(),
        application=str(settings.spark_jobs_dir() / f"{job}.py"),
        application_args=["--run-config", RUN_CONFIG],
        conn_id=settings.spark_conn_id(),
        name=f"sparkvision-{job}",
        conf=conf,
        execution_timeout=kwargs.pop("execution_timeout", timedelta(hours=6)),
        **kwargs,
    )
    operator.operator_extra_links = job_links(job)
    return operator
