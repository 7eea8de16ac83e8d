"""Shared command-line plumbing of the spark-submit entry points in spark_jobs/."""

from __future__ import annotations

import argparse
import logging
import sys

from sparkvision.layout import DatasetPaths, InvalidNameError, validate_root
from sparkvision.settings import storage_root

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: Set on every session of the jobs (and the tests' session). Kryo for cached blocks: Java
#: serialization keeps every object of a block read back (up to 100) alive, and the ingest's
#: cached partitions are made of batches of megabytes of pixels (OutOfMemoryError at 512m).
SESSION_CONF = {"spark.serializer": "org.apache.spark.serializer.KryoSerializer"}


def dataset_parser(description: str | None) -> argparse.ArgumentParser:
    """A parser with --root, --dataset and --version, the arguments every stage takes."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=storage_root(), help="storage root URI (default: SPARKVISION_ROOT)")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--version", required=True)
    return parser


def parse_or_exit(
    parser: argparse.ArgumentParser, argv: list[str] | None = None
) -> tuple[argparse.Namespace, DatasetPaths]:
    """Parse arguments and validate every name before any path is built; exit 2 on bad input."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, stream=sys.stdout)
    logging.getLogger("py4j").setLevel(logging.WARNING)
    args = parser.parse_args(argv)
    try:
        validate_root(args.root)
        return args, DatasetPaths(args.root, args.dataset, args.version)
    except (InvalidNameError, ValueError) as exc:
        parser.error(str(exc))
        raise  # unreachable: parser.error exits


def spark_session(app_name: str):
    """The job's SparkSession; master and resources come from spark-submit."""
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName(app_name).config(map=SESSION_CONF).getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
