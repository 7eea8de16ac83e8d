"""Session-wide fixtures: one SparkSession and one real HDFS per test session (and, for the cluster
tests, one Spark standalone cluster and one three-DataNode HDFS)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from devtools import spark_cluster
from devtools.hdfs_cluster import HdfsCluster, with_free_ports
from sparkvision.config.runconfig import RunConfig
from sparkvision.platform.spark import SESSION_CONF
from sparkvision.platform.storage import CLOSE_RETRY_DELAY_KEY

# py4j logs "Closing down clientserver connection" from __del__ after pytest closed its streams.
logging.getLogger("py4j").setLevel(logging.WARNING)
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def spark():
    """A local[2] SparkSession shared by the whole session (JVM start costs seconds)."""
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("sparkvision-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.log.level", "WARN")
        .config(f"spark.hadoop.{CLOSE_RETRY_DELAY_KEY}", "20")  # see sparkvision.storage
        .config(map=SESSION_CONF)
        .getOrCreate()
    )
    yield session
    session.stop()


@pytest.fixture(scope="session")
def hadoop_fs(spark):
    from sparkvision.platform.storage import HadoopFS

    return HadoopFS(spark)


@pytest.fixture(scope="session")
def hdfs(tmp_path_factory) -> HdfsCluster:
    """A real single-node HDFS (NameNode + DataNode) on free loopback ports, stopped at the end."""
    cluster = with_free_ports(str(tmp_path_factory.mktemp("hdfs")))
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def hdfs3(tmp_path_factory) -> HdfsCluster:
    """A real HDFS of three DataNodes keeping two replicas of every block, on free loopback ports.

    Its clients must write with two replicas too: ``HADOOP_CONF_DIR=hdfs3.client_conf_dir``.
    """
    cluster = with_free_ports(str(tmp_path_factory.mktemp("hdfs3")), datanodes=3, replication=2)
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def standalone_cluster(tmp_path_factory) -> spark_cluster.SparkCluster:
    """A Spark standalone cluster (a master, two workers of one core each) on free loopback ports."""
    cluster = spark_cluster.with_free_ports(str(tmp_path_factory.mktemp("spark")), workers=2, cores=1, memory="2g")
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["file", "hdfs"])
def root(request, tmp_path) -> str:
    """A fresh storage root on the local filesystem and on the session's HDFS."""
    if request.param == "file":
        return (tmp_path / "root").as_uri()
    cluster: HdfsCluster = request.getfixturevalue("hdfs")
    return f"{cluster.uri}/t/{tmp_path.name}"


@pytest.fixture(scope="session")
def project_dir() -> Path:
    return Path(__file__).resolve().parent.parent


#: The dataset of the tests' small Fashion-MNIST slices.
DATASET = "fashion_mnist"


@pytest.fixture(scope="session")
def make_config():
    """``make_config(root, version, **params)``: a validated run config of the tests' dataset."""

    def make(root: str, version: str, **params) -> RunConfig:
        return RunConfig.build(root, {"dataset": DATASET, "version": version, **params})

    return make


@pytest.fixture(scope="session")
def make_tensors(spark, make_config):
    """``make_tensors(root, version, limit, **params)``: a raw drop of ``limit`` train + ``limit``
    test images, ingested and tensorized with the real Spark stages; returns (config, stats)."""
    from devtools.rawdrop import lay_out
    from sparkvision.ingest.run import run_ingest
    from sparkvision.training.tensorize import run_tensorize

    def make(root: str, version: str, limit: int, **params) -> tuple[RunConfig, dict]:
        config = make_config(root, version, **params)
        lay_out(root, DATASET, version, limit=limit)
        run_ingest(spark, config.paths, config.ingest)
        return config, run_tensorize(spark, config)

    return make


#: Images per source split of the tests' published model (the serving and batch_inference tests).
SERVED_SLICE = 200


@pytest.fixture(scope="session")
def published_model(spark, tmp_path_factory, make_tensors) -> RunConfig:
    """A file:// root with fashion_mnist v1 (``SERVED_SLICE`` train + test images: raw drop, curated,
    tensors) and fashion_cnn version 1 trained on it (reference CNN, one epoch), evaluated on the
    executors and published. Returns the run's config (its ``root``, ``paths``, ``model_paths``)."""
    from sparkvision.evaluation.evaluate import evaluate
    from sparkvision.platform.storage import HadoopFS
    from sparkvision.registry.publish import publish
    from sparkvision.training.train import train

    root = (tmp_path_factory.mktemp("served") / "root").as_uri()
    fast = {"architecture": "reference", "epochs": 1, "batch_size": 64, "min_accuracy": 0.0, "max_regression": 1.0}
    config, _ = make_tensors(root, "v1", SERVED_SLICE, **fast)
    fs = HadoopFS(spark)
    train(fs, config)
    evaluate(spark, config)
    publish(fs, config.model_paths, config.run_id)
    return config
