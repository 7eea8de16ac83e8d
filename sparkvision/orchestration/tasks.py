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


def dag_macros() -> dict[str, Any]:
    """The DAG's ``user_defined_macros``: ``artifact(run_config_uri, name)`` for sensor paths."""
    from sparkvision.orchestration.runs import artifact_path

    return {"artifact": artifact_path}


def artifact_sensor(task_id: str, root: str, artifact: str, **kwargs: Any):
    """Wait for the ``_SUCCESS`` of one of the run's artifacts: WebHdfsSensor on HDFS, FileSensor on file://."""
    path = f"{{{{ artifact({RUN_CONFIG_EXPR}, {artifact!r}) }}}}"
    common = {
        "poke_interval": settings.sensor_poke_seconds(),
        "timeout": settings.sensor_timeout_seconds(),
        "mode": "poke",
        **kwargs,
    }
    if is_hdfs(root):
        from airflow.providers.apache.hdfs.sensors.web_hdfs import WebHdfsSensor

        return WebHdfsSensor(task_id=task_id, filepath=path, webhdfs_conn_id=settings.webhdfs_conn_id(), **common)
    from airflow.providers.standard.sensors.filesystem import FileSensor

    return FileSensor(task_id=task_id, filepath=path, fs_conn_id=settings.fs_conn_id(), **common)


def spark_job(task_id: str, job: str, **kwargs: Any):
    """A SparkSubmitOperator running ``spark_jobs/<job>.py --run-config <URI>`` (master: the connection)."""
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    conf = {
        "spark.log.level": "WARN",
        "spark.ui.showConsoleProgress": "false",
        f"spark.hadoop.{CLOSE_RETRY_DELAY_KEY}": "20",  # small-file writes to HDFS (see storage.py)
        **kwargs.pop("conf", {}),
    }
    return SparkSubmitOperator(
        task_id=task_id,
        application=str(settings.spark_jobs_dir() / f"{job}.py"),
        application_args=["--run-config", RUN_CONFIG],
        conn_id=settings.spark_conn_id(),
        name=f"sparkvision-{job}",
        conf=conf,
        execution_timeout=kwargs.pop("execution_timeout", timedelta(hours=6)),
        **kwargs,
    )
