"""Helpers shared by the DAG tests: what a published model must do, wherever its root is."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sparkvision.platform.layout import DatasetPaths, ModelPaths, is_hdfs, uri_path
from sparkvision.training import tfdata


def local_copy(hadoop_fs, uri: str, tmp_path: Path) -> Path:
    if not is_hdfs(uri):
        return Path(uri_path(uri))
    target = tmp_path / uri.rstrip("/").rsplit("/", 1)[-1]
    hadoop_fs.copy_to_local(uri, str(target))
    return target


def assert_published_model_predicts(
    hadoop_fs, root: str, dataset_version: str, version: int, tmp_path: Path, shape: tuple[int, int, int] = (28, 28, 1)
) -> None:
    """The model at models/fashion_cnn/<version> loads as a SavedModel and predicts (n, 10)."""
    import tensorflow as tf

    model_uri = ModelPaths(root, "fashion_cnn").version(version)
    assert hadoop_fs.exists(f"{model_uri}/saved_model.pb") and hadoop_fs.exists(f"{model_uri}/variables")
    assert hadoop_fs.read_json(f"{model_uri}/metrics.json")["blessed"] is True
    local = local_copy(hadoop_fs, model_uri, tmp_path / f"model{version}")
    loaded = tf.saved_model.load(str(local))
    test_dir = local_copy(
        hadoop_fs, DatasetPaths(root, "fashion_mnist", dataset_version).tensor_split("test"), tmp_path
    )
    images, _ = next(tfdata.iter_chunks(tfdata.shard_files(test_dir), shape, seed=None))
    probabilities = loaded.serve(tf.constant(images[:32])).numpy()
    assert probabilities.shape == (32, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-4)
