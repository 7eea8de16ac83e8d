"""Evaluate a trained run on the test split, compare it with the published champion, bless it or not.

Writes ``<run>/evaluation/`` (metrics.json, confusion_matrix.png, training_curves.png,
report.html, _SUCCESS), committed atomically. ``metrics.json`` carries ``blessed`` and the
reason, which the DAG's gate reads before publishing.

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
from sparkvision.evaluation.metrics import bless, classification_metrics, confusion_matrix
from sparkvision.evaluation.report import write_plots, write_report
from sparkvision.platform.catalog import latest_version
from sparkvision.platform.layout import (
    EVAL_METRICS,
    MODEL_FILE,
    RUN_HISTORY_CSV,
    RUN_PARAMS,
    SUCCESS,
    TENSOR_STATS,
    ModelPaths,
)
from sparkvision.training.train import input_record, local_tensors, same_input

log = logging.getLogger(__name__)


def predict_labels(model, split_dir: Path, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(true labels, predicted labels) over a tensor split, streamed chunk by chunk."""
    from sparkvision.training import tfdata

    truths, predictions = [], []
    for x, y in tfdata.iter_chunks(tfdata.shard_files(split_dir), shape, seed=None):
        probabilities = model.predict_on_batch(x) if len(x) <= 1024 else model.predict(x, batch_size=1024, verbose=0)
        truths.append(y)
        predictions.append(np.asarray(probabilities).argmax(axis=1))
    return np.concatenate(truths), np.concatenate(predictions)


def evaluate(fs, config: RunConfig) -> dict:
    """Evaluate the run of ``config`` on its test split; write and return its metrics."""
    import keras

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
    with tempfile.TemporaryDirectory(prefix="sparkvision-eval-") as work:
        work_dir = Path(work)
        test_dir = local_tensors(fs, tensors_uri, work_dir) / "test"
        fs.copy_to_local(f"{run_uri}/{MODEL_FILE}", str(work_dir / MODEL_FILE))
        candidate = keras.models.load_model(work_dir / MODEL_FILE)
        y_true, y_pred = predict_labels(candidate, test_dir, shape)
        matrix = confusion_matrix(y_true, y_pred, len(labels))
        metrics = classification_metrics(matrix, labels)
        champion, skipped = _champion_metrics(fs, model_paths, test_dir, shape, labels, work_dir)
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
    fs, model_paths: ModelPaths, test_dir: Path, shape, labels, work_dir: Path
) -> tuple[dict | None, dict | None]:
    """(the LATEST model's metrics on the same test split, None) or (None, why it was left out)."""
    import keras

    version = latest_version(fs, model_paths)
    if version is None:
        return None, None
    local = work_dir / "champion.keras"
    fs.copy_to_local(f"{model_paths.version(version)}/{MODEL_FILE}", str(local))
    champion = keras.models.load_model(local)
    champion_shape = tuple(champion.input_shape[1:])
    if champion_shape != shape or champion.output_shape[-1] != len(labels):
        reason = (
            f"champion version {version} takes {'x'.join(map(str, champion_shape))} images -> "
            f"{champion.output_shape[-1]} classes; this test split holds {'x'.join(map(str, shape))} -> "
            f"{len(labels)}: not comparable, blessed on min_accuracy alone"
        )
        log.warning("%s", reason)
        return None, {"version": version, "reason": reason}
    y_true, y_pred = predict_labels(champion, test_dir, shape)
    matrix = confusion_matrix(y_true, y_pred, len(labels))
    # The same metrics as the candidate's, on the same test split.
    return {"version": version, **classification_metrics(matrix, labels), "confusion_matrix": matrix.tolist()}, None
