"""Deployment settings: environment variables with defaults, read in one place.

Nothing here does I/O, so DAG files may import it at parse time.
"""

from __future__ import annotations

import os
from pathlib import Path

#: The repository checkout (dags/, spark_jobs/ and sparkvision/ live under it).
PROJECT_DIR = Path(__file__).resolve().parents[2]

#: The embedded default root: a folder under the repository that git ignores.
DEFAULT_ROOT = (PROJECT_DIR / "data").as_uri()


def storage_root() -> str:
    """The storage root URI (``file:///...`` or ``hdfs://host:port/...``), from SPARKVISION_ROOT."""
    return os.environ.get("SPARKVISION_ROOT", DEFAULT_ROOT).rstrip("/")


def spark_jobs_dir() -> Path:
    """Where the spark-submit entry points live (SPARKVISION_SPARK_JOBS overrides it on a cluster)."""
    return Path(os.environ.get("SPARKVISION_SPARK_JOBS", PROJECT_DIR / "spark_jobs"))


def spark_conn_id() -> str:
    return os.environ.get("SPARKVISION_SPARK_CONN_ID", "spark_default")


def webhdfs_conn_id() -> str:
    return os.environ.get("SPARKVISION_WEBHDFS_CONN_ID", "webhdfs_default")


def fs_conn_id() -> str:
    return os.environ.get("SPARKVISION_FS_CONN_ID", "fs_default")


def sensor_poke_seconds() -> float:
    return float(os.environ.get("SPARKVISION_SENSOR_POKE_SECONDS", "10"))


def sensor_timeout_seconds() -> float:
    return float(os.environ.get("SPARKVISION_SENSOR_TIMEOUT_SECONDS", str(6 * 3600)))


def drop_timeout_seconds() -> float:
    """How long a run waits for its raw drop before it fails saying which drop never arrived."""
    return float(os.environ.get("SPARKVISION_DROP_TIMEOUT_SECONDS", str(sensor_timeout_seconds())))


def spark_pool() -> str:
    """The Airflow pool every Spark job of the DAGs runs in: how many run at once, machine-wide."""
    return os.environ.get("SPARKVISION_SPARK_POOL", "sparkvision_spark")


def spark_pool_slots() -> int:
    """The pool's size where this project creates it (`make airflow-start`, `make airflow-init`)."""
    return int(os.environ.get("SPARKVISION_SPARK_POOL_SLOTS", "1"))
