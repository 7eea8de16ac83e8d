"""The SparkSession of a job and session-scoped settings: Spark plumbing in one place."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: Set on every session of the jobs (and the tests' session). Kryo for cached blocks: Java
#: serialization keeps every object of a block read back (up to 100) alive, and the ingest's
#: cached partitions are made of batches of megabytes of pixels (OutOfMemoryError at 512m).
SESSION_CONF = {"spark.serializer": "org.apache.spark.serializer.KryoSerializer"}


def spark_session(app_name: str) -> Any:
    """The job's SparkSession; master and resources come from spark-submit."""
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName(app_name).config(map=SESSION_CONF).getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


@contextmanager
def session_conf(spark: Any, conf: dict[str, str]) -> Iterator[None]:
    """Set SQL confs for the block and restore them after (the session may be shared)."""
    old = {key: spark.conf.get(key, None) for key in conf}
    for key, value in conf.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)
