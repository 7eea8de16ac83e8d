"""Distributed training on real Spark and TensorFlow (the session's local[2] master: two barrier tasks).

Two workers keep identical weights and reach the accuracy of one worker on the same data and
epochs; uneven parts train without a hang, every worker running the same steps; asking for more
workers than the cluster has slots is an error, not a silent fallback.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from sparkvision.platform.layout import uri_path

pytestmark = pytest.mark.integration

SLICE = 2000  # images per source split: 2,000 train, 2,000 test
# No validation split: the exported weights are the last epoch's on both sides (choosing the epoch on
# a few hundred validation images would add a noise of its own to the comparison).
SPLIT = {"validation_share": 0.0}
COMMON = {**SPLIT, "architecture": "reference", "epochs": 6, "batch_size": 64, "max_train_minutes": 0}


@pytest.fixture(scope="module")
def tensors(tmp_path_factory, make_tensors) -> tuple[str, dict]:
    """(root, stats) of a small tensorized slice."""
    root = (tmp_path_factory.mktemp("distributed") / "root").as_uri()
    return root, make_tensors(root, "v1", SLICE, **SPLIT)[1]


def test_accuracy(run_uri: str, tensors_uri: str) -> float:
    """The test-split accuracy of the run's model.keras."""
    import keras

    from sparkvision.training import tfdata

    model = keras.models.load_model(Path(uri_path(run_uri)) / "model.keras")
    chunks = list(tfdata.iter_chunks(tfdata.shard_files(Path(uri_path(tensors_uri)) / "test"), (28, 28, 1), None))
    x, y = np.concatenate([c[0] for c in chunks]), np.concatenate([c[1] for c in chunks])
    return float((model.predict(x, batch_size=500, verbose=0).argmax(axis=1) == y).mean())


test_accuracy.__test__ = False  # a helper, not a test


def test_two_workers_keep_identical_weights_and_reach_one_workers_accuracy(hadoop_fs, tensors, make_config):
    from sparkvision.training.train import train

    root, stats = tensors
    n_train = stats["counts"]["train"]
    one = train(hadoop_fs, make_config(root, "v1", model="one", workers=1, **COMMON))
    two = train(hadoop_fs, make_config(root, "v1", model="two", workers=2, **COMMON))
    assert one["workers"] == 1 and two["workers"] == 2
    assert two["steps_per_epoch"] == one["steps_per_epoch"] == n_train // 64  # the same global batch
    digests = {result["weights_digest"] for result in two["worker_results"]}
    assert len(digests) == 1, two["worker_results"]
    assert sorted(r["train_images"] for r in two["worker_results"]) == [n_train // 2, n_train - n_train // 2]
    assert two["history"]["workers"] == [2.0] * 6
    tensors = make_config(root, "v1", **SPLIT).paths.tensors
    accuracies = test_accuracy(one["run_uri"], tensors), test_accuracy(two["run_uri"], tensors)
    assert accuracies[0] > 0.8
    assert abs(accuracies[0] - accuracies[1]) <= 0.01, accuracies


@pytest.mark.timeout(300)
def test_uneven_parts_train_without_a_hang_and_with_the_same_steps(spark, hadoop_fs, tensors, make_config):
    from pyspark.sql import functions as F

    from sparkvision.platform import schema
    from sparkvision.training import distributed
    from sparkvision.training.train import RunRecord

    root, stats = tensors
    n_train = stats["counts"]["train"]
    # The stronger CNN: its batch normalisation statistics must end up identical too.
    config = make_config(root, "v1", model="uneven", workers=2, **{**COMMON, "architecture": "stronger", "epochs": 2})
    keys = distributed._partition_keys(spark, 2)
    # Worker 1 gets about a tenth of the rows, worker 0 the rest.
    skewed = (
        spark.read.parquet(f"{config.paths.tensors}/train")
        .select(F.lit(0).cast("byte").alias(distributed.PART_SPLIT), schema.ID, schema.LABEL_INDEX, schema.PIXELS)
        .withColumn("_w", F.when(F.rand(seed=3) < 0.1, keys[1]).otherwise(keys[0]))
        .repartition(2, "_w")
        .drop("_w")
    )
    job = {
        "workers": 2,
        "batch": 32,
        "params": asdict(config.train),
        "shape": stats["image_shape"],
        "num_classes": stats["num_classes"],
        "mean": stats["channel_mean"],
        "std": stats["channel_std"],
    }
    hadoop_fs.mkdirs(config.run_uri)
    results = distributed.train_on_executors(
        spark, skewed, job, RunRecord(hadoop_fs, config.run_uri, config.train).handlers()
    )
    big, small = (result["train_images"] for result in results)
    assert big + small == n_train and big > 5 * small
    assert [result["steps_per_epoch"] for result in results] == [n_train // 64] * 2
    assert [result["epochs_run"] for result in results] == [2, 2]
    assert results[0]["weights_digest"] == results[1]["weights_digest"]


def test_more_workers_than_slots_is_an_error_not_a_fallback(hadoop_fs, tensors, make_config):
    from sparkvision.training.train import train

    root, _ = tensors
    with pytest.raises(ValueError, match="asks for 3 worker"):
        train(hadoop_fs, make_config(root, "v1", model="three", workers=3, **COMMON))
