"""Evaluate a trained run on the test split, compare it with the published champion, bless it or not.

Writes ``<run>/evaluation/`` (metrics.json, confusion_matrix.png, training_curves.png,
report.html, predictions.parquet, _SUCCESS), committed atomically. ``metrics.json`` carries
``blessed`` and the reason, which the DAG's gate reads before publishing; ``predictions.parquet``
holds the candidate's prediction of every test image (id, true and predicted index, confidence).

The test-split predictions are computed by Spark tasks through the serving code
(``sparkvision.serving.scoring``), the same path as batch inference: each model is shipped once
per executor and loaded once per Python worker; the driver loads no model. The confusion matrix
is a Spark aggregation of the predictions.

The candidate is scored only on the tensors it was trained on (same fingerprint and content
hash, or the evaluation refuses). The champion (the model LATEST points at) is scored on the
same test split when it can be: a champion that takes another input shape, or predicts another
number of classes, cannot be, and is left out of the comparison with the reason recorded in
``champion_skipped``; the candidate is then blessed on ``min_accuracy`` alone.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from sparkvision.config.runconfig import RunConfig, StaleInputError, check_fingerprint
from sparkvision.evaluation.metrics import bless, classification_metrics
from sparkvision.evaluation.report import write_plots, write_report
from sparkvision.platform import schema
from sparkvision.platform.catalog import latest_version
from sparkvision.platform.layout import (
    EVAL_METRICS,
    PREDICTIONS,
    RUN_EXPORT,
    RUN_HISTORY_CSV,
    RUN_PARAMS,
    SUCCESS,
    TENSOR_STATS,
    ModelPaths,
)
from sparkvision.serving.models import ModelSpec, published_model
from sparkvision.serving.scoring import score_frame
from sparkvision.training.train import input_record, same_input

log = logging.getLogger(__name__)


def predict_split(spark, fs, spec: ModelSpec, split_uri: str):
    """The predictions of ``spec`` over a tensor split, computed by Spark tasks (cached; unpersist it).

    Columns: id, label_index (true), predicted_index, confidence.
    """
    from pyspark.storagelevel import StorageLevel

    tensors = spark.read.parquet(split_uri).select(schema.ID, schema.LABEL_INDEX, schema.PIXELS)
    return (
        score_frame(spark, fs, spec, tensors, keep=1)
        .select(*schema.EVAL_PREDICTIONS_COLUMNS)
        .persist(StorageLevel.MEMORY_AND_DISK)
    )


def confusion_of(predictions, num_classes: int) -> np.ndarray:
    """The confusion matrix (rows: true, columns: predicted) of a predictions frame: one aggregation."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    for row in predictions.groupBy(schema.LABEL_INDEX, schema.PREDICTED_INDEX).count().collect():
        matrix[row[schema.LABEL_INDEX], row[schema.PREDICTED_INDEX]] += row["count"]
    return matrix


def evaluate(spark, config: RunConfig) -> dict:
    """Evaluate the run of ``config`` on its test split; write and return its metrics."""
    from sparkvision.platform.storage import HadoopFS

    fs = HadoopFS(spark)
    paths, model_paths, run_id, run_uri = config.paths, config.model_paths, config.run_id, config.run_uri
    if not fs.exists(f"{run_uri}/{SUCCESS}"):
        raise FileNotFoundError(f"no finished run at {run_uri} (no {SUCCESS})")
    tensors_uri = fs.readable(paths.tensors)
    stats = fs.read_json(f"{tensors_uri}/{TENSOR_STATS}")
    check_fingerprint(stats, config.tensors_fingerprint, "tensors", paths.tensors)
    trained_on = fs.read_json(f"{run_uri}/{RUN_PARAMS}")
    if not same_input(trained_on, input_record(config, stats)):
        raise StaleInputError(
            f"run {run_id} was trained on curated content {trained_on.get('curated_content_hash')}, but "
            f"{paths.tensors} now holds {stats['curated_content_hash']}: not scoring a model on other data"
        )
    shape = tuple(stats["image_shape"])
    labels = [label for label, _ in sorted(stats["label_index"].items(), key=lambda item: item[1])]
    test_uri = f"{tensors_uri}/test"
    candidate = ModelSpec(config.model, None, f"{run_uri}/{RUN_EXPORT}", shape, tuple(labels), config.ingest, run_id)
    predictions = predict_split(spark, fs, candidate, test_uri)
    with tempfile.TemporaryDirectory(prefix="sparkvision-eval-") as work:
        work_dir = Path(work)
        matrix = confusion_of(predictions, len(labels))
        metrics = classification_metrics(matrix, labels)
        champion, skipped = _champion_metrics(spark, fs, model_paths, test_uri, shape, labels)
        blessed, reason = bless(metrics["accuracy"], champion["accuracy"] if champion else None, config.evaluate)
        if skipped:
            reason = f"{reason}; {skipped['reason']}"
        metrics.update(
            {
                "run_id": run_id,
                "dataset": paths.dataset,
                "version": paths.version,
                "image_shape": list(shape),
                "curated_content_hash": stats["curated_content_hash"],
                "confusion_matrix": matrix.tolist(),
                "labels": labels,
                "champion": champion,
                "champion_skipped": skipped,
                "blessed": blessed,
                "reason": reason,
                "params": asdict(config.evaluate),
            }
        )
        out = work_dir / "evaluation"
        out.mkdir()
        (out / EVAL_METRICS).write_text(json.dumps(metrics, indent=2, sort_keys=True))
        history = work_dir / RUN_HISTORY_CSV
        fs.copy_to_local(f"{run_uri}/{RUN_HISTORY_CSV}", str(history))
        write_plots(out, matrix, labels, history)
        write_report(out, metrics)
        (out / SUCCESS).touch()
        with fs.staged_dir(model_paths.evaluation(run_id)) as tmp:
            fs.delete(tmp)
            fs.copy_from_local(str(out), tmp)
            predictions.coalesce(1).sortWithinPartitions(schema.ID).write.parquet(f"{tmp}/{PREDICTIONS}")
    predictions.unpersist()
    log.info(
        "%s: accuracy %.4f, macro F1 %.4f; %s: %s",
        run_id,
        metrics["accuracy"],
        metrics["macro_f1"],
        "BLESSED" if blessed else "NOT BLESSED",
        reason,
    )
    return metrics


def _champion_metrics(
    spark, fs, model_paths: ModelPaths, test_uri: str, shape, labels
) -> tuple[dict | None, dict | None]:
    """(the LATEST model's metrics on the same test split, None) or (None, why it was left out)."""
    version = latest_version(fs, model_paths)
    if version is None:
        return None, None
    champion = published_model(fs, model_paths, version)
    if champion.shape != shape or len(champion.labels) != len(labels):
        reason = (
            f"champion version {version} takes {'x'.join(map(str, champion.shape))} images -> "
            f"{len(champion.labels)} classes; this test split holds {'x'.join(map(str, shape))} -> "
            f"{len(labels)}: not comparable, blessed on min_accuracy alone"
        )
        log.warning("%s", reason)
        return None, {"version": version, "reason": reason}
    predictions = predict_split(spark, fs, champion, test_uri)
    matrix = confusion_of(predictions, len(labels))
    predictions.unpersist()
    # The same metrics as the candidate's, on the same test split.
    return {"version": version, **classification_metrics(matrix, labels), "confusion_matrix": matrix.tolist()}, None
