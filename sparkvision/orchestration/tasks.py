"""Airflow glue shared by the DAGs: artifact sensors, spark-submit tasks and small reads.

Light to import (no TensorFlow, no Spark): DAG files import it at parse time. Hooks are created
inside the functions that run in a task, never at import.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sparkvision import settings
from sparkvision.layout import is_hdfs, uri_path
from sparkvision.storage import CLOSE_RETRY_DELAY_KEY


def xcom(task_id: str, key: str) -> str:
    """A Jinja template for one field of a task's returned dict, e.g. the resolved version."""
    return f"{{{{ ti.xcom_pull(task_ids='{task_id}')['{key}'] }}}}"


def artifact_sensor(task_id: str, root: str, relative: str, **kwargs: Any):
    """Wait for ``<root>/<relative>`` (templated): WebHdfsSensor on HDFS, FileSensor on file://."""
    path = f"{uri_path(root).rstrip('/')}/{relative}"
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


def spark_job(task_id: str, job: str, args: list[str], **kwargs: Any):
    """A SparkSubmitOperator running ``spark_jobs/<job>.py``; master etc. come from the connection."""
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
        application_args=args,
        conn_id=settings.spark_conn_id(),
        name=f"sparkvision-{job}",
        conf=conf,
        execution_timeout=kwargs.pop("execution_timeout", timedelta(hours=6)),
        **kwargs,
    )


def read_text(uri: str) -> str:
    """Read a small text file from the root: through the WebHDFS connection on HDFS, else locally."""
    if is_hdfs(uri):
        from airflow.providers.apache.hdfs.hooks.webhdfs import WebHDFSHook

        client = WebHDFSHook(settings.webhdfs_conn_id()).get_conn()
        with client.read(uri_path(uri)) as reader:
            return reader.read().decode("utf-8")
    with open(uri_path(uri)) as handle:
        return handle.read()


def read_json(uri: str) -> Any:
    """Read a small JSON file from the root (see read_text)."""
    return json.loads(read_text(uri))
