"""Batch inference on real Spark (and HDFS): predictions, quarantine, re-runs, labelled versions, refusals.

Every test scores with the session's small published model (``published_model``: a reference CNN
trained for one epoch on a slice of Fashion-MNIST): they check the scoring path, not model quality.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from sparkvision.config.scoring import ScoringConfig
from sparkvision.ingest.drop import drop_folder
from sparkvision.platform import schema
from sparkvision.platform.layout import PREDICTION_MANIFEST, PREDICTION_REJECTS, PREDICTIONS, is_hdfs, uri_path
from sparkvision.serving.batch import TIMING_FIELDS, run_scoring
from sparkvision.serving.models import ModelNotFoundError
from tests.serving.helpers import published_root, write_bad_batch

pytestmark = pytest.mark.integration


def read_table(hadoop_fs, uri: str, tmp_path: Path):
    """A Parquet folder on the root as one pyarrow table, sorted by path."""
    local = Path(uri_path(uri))
    if is_hdfs(uri):
        local = tmp_path / f"copy-{uuid.uuid4().hex}"
        hadoop_fs.copy_to_local(uri, str(local))
    return pq.read_table(sorted(local.glob("*.parquet"))).sort_by(schema.PATH)


def test_predictions_on_the_test_images_agree_with_the_evaluate_stage(published_model, spark, hadoop_fs, tmp_path):
    """The raw Fashion-MNIST PNG files, dropped as a batch: decoded and scored as evaluate scored the tensors."""
    config = published_model
    root = config.root
    drop_folder(Path(uri_path(config.paths.raw)), f"{root}/incoming/fmnist", labelled=False, link=True)
    manifest = run_scoring(spark, ScoringConfig.build(root, {"batch": "fmnist", "top_k": 3}))
    assert manifest["files_found"] == 2 * 200 and manifest["scored"] == 400 and manifest["rejected"] == 0
    assert manifest["model_version"] == 1 and manifest["image_shape"] == [28, 28, 1]

    output = f"{root}/predictions/fashion_cnn/1/fmnist"
    table = read_table(hadoop_fs, f"{output}/{PREDICTIONS}", tmp_path)
    assert table.column_names == list(schema.PREDICTIONS_COLUMNS)
    rows = table.to_pylist()
    assert {(r["model"], r["model_version"], r["batch"]) for r in rows} == {("fashion_cnn", 1, "fmnist")}
    assert all(len(r["top_k_labels"]) == 3 and r["top_k_labels"][0] == r["predicted_label"] for r in rows)
    assert all(r["top_k_probabilities"][0] == r["confidence"] for r in rows)
    assert all(r["label"] is None and r["label_index"] is None for r in rows)  # a batch has no labels

    evaluated = pq.read_table(f"{uri_path(config.model_paths.evaluation(config.run_id))}/{PREDICTIONS}").to_pylist()
    by_id = {r["id"]: r for r in rows}
    assert len(evaluated) == 200  # the test split: the dataset's own test images
    agree = [by_id[e["id"]]["predicted_index"] == e["predicted_index"] for e in evaluated]
    assert sum(agree) == len(evaluated)  # 100%
    assert all(by_id[e["id"]]["confidence"] == e["confidence"] for e in evaluated)  # the same probabilities
    assert all(by_id[e["id"]]["path"].split("/")[1].startswith("test-") for e in evaluated)


def test_bad_files_are_quarantined_with_their_reasons(published_model, spark, hadoop_fs, root, tmp_path):
    root = published_root(hadoop_fs, published_model, root)
    expected = write_bad_batch(tmp_path / "batch")
    drop_folder(tmp_path / "batch", f"{root}/incoming/mixed", labelled=False, threads=4)
    manifest = run_scoring(spark, ScoringConfig.build(root, {"batch": "mixed", "top_k": 20}))

    bad = {rel: reason for rel, reason in expected.items() if reason}
    assert manifest["files_found"] == len(expected)
    assert (manifest["scored"], manifest["rejected"]) == (len(expected) - len(bad), len(bad))
    assert manifest["rejected_by_reason"] == {reason: 1 for reason in bad.values()}
    assert manifest["top_k"] == 10  # at most the model's classes
    output = f"{root}/predictions/fashion_cnn/1/mixed"
    rejects = read_table(hadoop_fs, f"{output}/{PREDICTION_REJECTS}", tmp_path).to_pylist()
    assert {r["path"]: r["reason"] for r in rejects} == bad
    assert all(r["detail"] for r in rejects)
    predictions = read_table(hadoop_fs, f"{output}/{PREDICTIONS}", tmp_path)
    assert predictions.column(schema.PATH).to_pylist() == sorted(rel for rel in expected if rel not in bad)
    assert sum(manifest["predictions_per_label"].values()) == manifest["scored"]
    assert sum(manifest["confidence_histogram"]["counts"]) == manifest["scored"]


def test_a_rerun_is_identical_and_a_scored_batch_is_not_scored_again(published_model, spark, hadoop_fs, tmp_path):
    root = published_root(hadoop_fs, published_model, (tmp_path / "root").as_uri())
    write_bad_batch(tmp_path / "batch")
    drop_folder(tmp_path / "batch", f"{root}/incoming/again", labelled=False)
    config = ScoringConfig.build(root, {"batch": "again"})
    output = Path(uri_path(config.pinned(1).output))

    first = run_scoring(spark, config)
    tables = {name: pq.read_table(output / name).sort_by(schema.PATH) for name in (PREDICTIONS, PREDICTION_REJECTS)}
    stamp = (output / PREDICTION_MANIFEST).stat().st_mtime_ns
    skipped = run_scoring(spark, config)
    assert skipped["skipped"] is True and (output / PREDICTION_MANIFEST).stat().st_mtime_ns == stamp

    again = run_scoring(spark, ScoringConfig.build(root, {"batch": "again", "rescore": True}))
    assert "skipped" not in again and (output / PREDICTION_MANIFEST).stat().st_mtime_ns != stamp
    for name, table in tables.items():
        assert pq.read_table(output / name).sort_by(schema.PATH).equals(table), name

    def timeless(manifest):
        return {k: v for k, v in manifest.items() if k not in TIMING_FIELDS}

    assert timeless(again) == timeless(first)
    assert not [p for p in output.parent.iterdir() if p.name.startswith(".")]  # no staging left


def test_a_labelled_curated_version_reports_accuracy_and_the_confusion_matrix(published_model, spark, tmp_path):
    config = published_model
    scoring = ScoringConfig.build(config.root, {"batch": "v1", "curated_dataset": "fashion_mnist", "top_k": 1})
    manifest = run_scoring(spark, scoring)
    assert manifest["labelled"] and manifest["files_found"] == manifest["scored"] == 400
    predictions = pq.read_table(Path(uri_path(scoring.pinned(1).output)) / PREDICTIONS).to_pylist()
    correct = sum(r["predicted_label"] == r["label"] for r in predictions)
    assert manifest["correct"] == correct and manifest["accuracy"] == pytest.approx(correct / 400)
    matrix = np.array(manifest["confusion_matrix"])
    assert matrix.sum() == 400 and np.trace(matrix) == correct
    assert manifest["confusion_rows"] == manifest["labels"] and manifest["unknown_labels"] == []
    assert all(manifest["labels"][r["label_index"]] == r["label"] for r in predictions)


def test_a_model_version_that_does_not_exist_fails_before_any_spark_work(published_model, spark):
    tracker = spark.sparkContext.statusTracker()
    group = f"missing-{uuid.uuid4().hex}"
    spark.sparkContext.setJobGroup(group, "a scoring run with a missing model version")
    try:
        with pytest.raises(ModelNotFoundError, match=r"no published version 7 .*published versions: 1$"):
            run_scoring(spark, ScoringConfig.build(published_model.root, {"batch": "fmnist", "model_version": 7}))
        missing_model = ScoringConfig.build(published_model.root, {"batch": "fmnist", "model": "nobody"})
        with pytest.raises(ModelNotFoundError, match="'nobody' has no published version"):
            run_scoring(spark, missing_model)
    finally:
        spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]
    assert tracker.getJobIdsForGroup(group) == []
