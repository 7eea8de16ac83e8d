"""Tensorize on real Spark: stable splits across versions, stats, row groups, _SUCCESS."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sparkvision.platform import schema
from sparkvision.platform.layout import SPLITS, SUCCESS, DatasetPaths, uri_path
from sparkvision.training.tensorize import run_tensorize

pytestmark = pytest.mark.integration
DATASET = "fashion_mnist"


def splits_by_content(spark, paths: DatasetPaths) -> dict[str, str]:
    """content hash -> split of every image of one tensorized version."""
    from pyspark.sql import functions as F

    curated = spark.read.parquet(f"{paths.curated}/images.parquet").select(schema.ID, schema.CONTENT_HASH)
    tensors = None
    for split in SPLITS:
        frame = spark.read.parquet(paths.tensor_split(split)).select(schema.ID).withColumn(schema.SPLIT, F.lit(split))
        tensors = frame if tensors is None else tensors.unionByName(frame)
    joined = tensors.join(curated, schema.ID).collect()
    return {row[schema.CONTENT_HASH]: row[schema.SPLIT] for row in joined}


def test_split_of_an_image_is_the_same_across_versions(spark, tmp_path, make_tensors):
    root = (tmp_path / "root").as_uri()
    config, first = make_tensors(root, "v1", 60, validation_share=0.2)
    _, second = make_tensors(root, "v2", 120, validation_share=0.2)  # v2 holds v1's images and more
    assert first["counts"]["test"] == 60 and second["counts"]["test"] == 120  # the source's test set
    old = splits_by_content(spark, DatasetPaths(root, DATASET, "v1"))
    new = splits_by_content(spark, DatasetPaths(root, DATASET, "v2"))
    assert len(old) >= 118 and set(old) <= set(new)
    moved = {h: (old[h], new[h]) for h in old if old[h] != new[h]}
    assert not moved
    assert {"train", "validation"} <= set(new.values())
    # re-running a version gives the same splits
    run_tensorize(spark, config)
    assert splits_by_content(spark, DatasetPaths(root, DATASET, "v1")) == old


def test_stats_row_groups_and_success(spark, tmp_path, make_tensors):
    import pyarrow.parquet as pq

    from sparkvision.training import tfdata

    root = (tmp_path / "root").as_uri()
    config, stats = make_tensors(root, "v1", 200)
    assert stats["fingerprint"] == config.tensors_fingerprint
    tensors = uri_path(DatasetPaths(root, DATASET, "v1").tensors)
    assert (Path(tensors) / SUCCESS).exists() and (Path(tensors) / "stats.json").exists()
    assert sum(stats["counts"].values()) == 400
    assert sum(stats["per_label"]["train"].values()) == stats["counts"]["train"]
    files = tfdata.shard_files(f"{tensors}/train")
    x = np.concatenate([chunk for chunk, _ in tfdata.iter_chunks(files, tuple(stats["image_shape"]), seed=None)])
    assert stats["channel_mean"][0] == pytest.approx(x.mean(), abs=0.01)
    assert stats["channel_std"][0] == pytest.approx(x.std(), abs=0.01)
    for path in files:  # small row groups, for streaming
        metadata = pq.ParquetFile(path).metadata
        assert all(metadata.row_group(i).num_rows <= 5000 for i in range(metadata.num_row_groups))
