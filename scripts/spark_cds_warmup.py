"""The work ``scripts/spark_cds.sh`` records the JVM's classes from: both ingest readers.

``spark-submit scripts/spark_cds_warmup.py <root>`` ingests the drop ``warmup/v1`` under ``<root>``
twice: as a ``file://`` root is (Python tasks; the JVM plans), and as any other Hadoop
filesystem is (the JVM lists, reads, caches, aggregates and writes Parquet: the classes of an
HDFS ingest, of batch inference and of the other Spark SQL jobs). Then it makes an HDFS client,
which connects to nothing until used, so that the HDFS client's classes are in the archive too.
"""

from __future__ import annotations

import sys

from sparkvision.config.params import IngestParams
from sparkvision.ingest.run import ingest_conf, ingest_listed, list_drop, run_ingest
from sparkvision.platform.layout import DatasetPaths
from sparkvision.platform.spark import session_conf, spark_session


def main(root: str) -> None:
    spark = spark_session("sparkvision-cds-warmup")
    try:
        paths, params = DatasetPaths(root, "warmup", "v1"), IngestParams()
        run_ingest(spark, paths, params)
        with session_conf(spark, ingest_conf(spark)):
            ingest_listed(spark, *list_drop(spark, paths), paths, params)
        jvm = spark._jvm
        client = jvm.org.apache.hadoop.hdfs.DistributedFileSystem()
        client.initialize(jvm.java.net.URI("hdfs://127.0.0.1:9"), spark._jsc.hadoopConfiguration())
        client.close()
    finally:
        spark.stop()


if __name__ == "__main__":
    main(sys.argv[1])
