"""Evaluate a trained run on the test split, compare it with the published champion, bless it or not.

Writes ``<run>/evaluation/`` (metrics.json, confusion_matrix.png, training_curves.png,
report.html, _SUCCESS). ``metrics.json`` carries ``blessed`` and the reason, which the DAG's
gate reads before publishing.
"""

from __future__ import annotations

import html
import json
import logging
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from sparkvision.layout import SUCCESS, DatasetPaths, ModelPaths
from sparkvision.params import EvalParams

log = logging.getLogger(__name__)

EVALUATION_DIR = "evaluation"
METRICS_FILE = "metrics.json"


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Rows: true class, columns: predicted class."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def classification_metrics(matrix: np.ndarray, labels: list[str]) -> dict:
    """Accuracy and per-class precision/recall/F1 from a confusion matrix."""
    true_positives = np.diag(matrix).astype(float)
    predicted = matrix.sum(axis=0).astype(float)
    actual = matrix.sum(axis=1).astype(float)
    precision = np.divide(true_positives, predicted, out=np.zeros_like(true_positives), where=predicted > 0)
    recall = np.divide(true_positives, actual, out=np.zeros_like(true_positives), where=actual > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros_like(denominator), where=denominator > 0)
    total = matrix.sum()
    per_class = {
        label: {
            "precision": round(float(p), 4),
            "recall": round(float(r), 4),
            "f1": round(float(f), 4),
            "support": int(s),
        }
        for label, p, r, f, s in zip(labels, precision, recall, f1, actual, strict=True)
    }
    return {
        "accuracy": float(true_positives.sum() / total) if total else 0.0,
        "macro_f1": round(float(f1.mean()), 4),
        "test_images": int(total),
        "per_class": per_class,
    }


def predict_labels(model, split_dir: Path, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(true labels, predicted labels) over a tensor split, streamed chunk by chunk."""
    from sparkvision import tfdata

    truths, predictions = [], []
    for x, y in tfdata.iter_chunks(tfdata.shard_files(split_dir), shape):
        probabilities = model.predict_on_batch(x) if len(x) <= 1024 else model.predict(x, batch_size=1024, verbose=0)
        truths.append(y)
        predictions.append(np.asarray(probabilities).argmax(axis=1))
    return np.concatenate(truths), np.concatenate(predictions)


def bless(accuracy: float, champion_accuracy: float | None, params: EvalParams) -> tuple[bool, str]:
    """The blessing rule: absolute threshold, and no regression beyond tolerance vs the champion."""
    if accuracy < params.min_accuracy:
        return False, f"test accuracy {accuracy:.4f} is below min_accuracy {params.min_accuracy:.4f}"
    if champion_accuracy is not None and accuracy < champion_accuracy - params.max_regression:
        return False, (
            f"test accuracy {accuracy:.4f} is worse than the champion's {champion_accuracy:.4f} "
            f"by more than max_regression {params.max_regression:.4f}"
        )
    against = f"champion {champion_accuracy:.4f}" if champion_accuracy is not None else "no champion yet"
    return True, f"test accuracy {accuracy:.4f} >= {params.min_accuracy:.4f} ({against})"


def evaluate(fs, paths: DatasetPaths, model_paths: ModelPaths, run_id: str, params: EvalParams) -> dict:
    """Evaluate run ``run_id`` on the test split of ``paths``; write and return its metrics."""
    import keras

    from sparkvision.train import HISTORY_CSV, MODEL_FILE, local_tensors

    run_uri = model_paths.run(run_id)
    if not fs.exists(f"{run_uri}/{SUCCESS}"):
        raise FileNotFoundError(f"no finished run at {run_uri} (no {SUCCESS})")
    stats = fs.read_json(f"{paths.tensors}/stats.json")
    shape = tuple(stats["image_shape"])
    labels = [label for label, _ in sorted(stats["label_index"].items(), key=lambda item: item[1])]
    with tempfile.TemporaryDirectory(prefix="sparkvision-eval-") as work:
        work_dir = Path(work)
        test_dir = local_tensors(fs, paths, work_dir) / "test"
        fs.copy_to_local(f"{run_uri}/{MODEL_FILE}", str(work_dir / MODEL_FILE))
        candidate = keras.models.load_model(work_dir / MODEL_FILE)
        y_true, y_pred = predict_labels(candidate, test_dir, shape)
        matrix = confusion_matrix(y_true, y_pred, len(labels))
        metrics = classification_metrics(matrix, labels)
        champion = _champion_metrics(fs, model_paths, test_dir, shape, labels, work_dir)
        blessed, reason = bless(metrics["accuracy"], champion["accuracy"] if champion else None, params)
        metrics.update(
            {
                "run_id": run_id,
                "dataset": paths.dataset,
                "version": paths.version,
                "confusion_matrix": matrix.tolist(),
                "labels": labels,
                "champion": champion,
                "blessed": blessed,
                "reason": reason,
                "params": asdict(params),
            }
        )
        out = work_dir / EVALUATION_DIR
        out.mkdir()
        (out / METRICS_FILE).write_text(json.dumps(metrics, indent=2, sort_keys=True))
        history = work_dir / HISTORY_CSV
        fs.copy_to_local(f"{run_uri}/{HISTORY_CSV}", str(history))
        write_plots(out, matrix, labels, history)
        write_report(out / "report.html", metrics)
        (out / SUCCESS).touch()
        target = f"{run_uri}/{EVALUATION_DIR}"
        with fs.staged_dir(target) as tmp:
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


def _champion_metrics(fs, model_paths: ModelPaths, test_dir: Path, shape, labels, work_dir: Path) -> dict | None:
    """The published LATEST model's metrics on the same test split, or None when there is none."""
    import keras

    from sparkvision.publish import latest_version

    version = latest_version(fs, model_paths)
    if version is None:
        return None
    local = work_dir / "champion.keras"
    fs.copy_to_local(f"{model_paths.version(version)}/model.keras", str(local))
    champion = keras.models.load_model(local)
    if tuple(champion.input_shape[1:]) != shape or champion.output_shape[-1] != len(labels):
        log.warning(
            "champion version %d takes %s -> %s, not comparable with %s -> %d classes; ignoring it",
            version,
            champion.input_shape,
            champion.output_shape,
            shape,
            len(labels),
        )
        return None
    y_true, y_pred = predict_labels(champion, test_dir, shape)
    matrix = confusion_matrix(y_true, y_pred, len(labels))
    # The same metrics as the candidate's, on the same test split.
    return {"version": version, **classification_metrics(matrix, labels), "confusion_matrix": matrix.tolist()}


def write_plots(out: Path, matrix: np.ndarray, labels: list[str], history_csv: Path) -> None:
    """confusion_matrix.png and training_curves.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 7))
    normalised = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    image = ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(
                j,
                i,
                str(matrix[i, j]),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if normalised[i, j] > 0.5 else "black",
            )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix (test split)")
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(out / "confusion_matrix.png", dpi=100)
    plt.close(fig)

    rows = _read_history(history_csv)
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = [int(r["epoch"]) + 1 for r in rows]
    for key, ax in (("loss", loss_ax), ("accuracy", acc_ax)):
        ax.plot(epochs, [float(r[key]) for r in rows], marker="o", label=f"train {key}")
        if rows and f"val_{key}" in rows[0]:
            ax.plot(epochs, [float(r[f"val_{key}"]) for r in rows], marker="o", label=f"validation {key}")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / "training_curves.png", dpi=100)
    plt.close(fig)


def _read_history(history_csv: Path) -> list[dict]:
    import csv

    with open(history_csv) as handle:
        return list(csv.DictReader(handle))


def write_report(path: Path, metrics: dict) -> None:
    """A small self-contained HTML report next to the plots."""
    champion = metrics["champion"]
    champion_per_class = (champion or {}).get("per_class", {})
    champion_head = "<th>champion F1</th>" if champion_per_class else ""
    rows = "".join(
        f"<tr><td>{html.escape(label)}</td><td>{m['precision']:.3f}</td><td>{m['recall']:.3f}</td>"
        f"<td>{m['f1']:.3f}</td><td>{m['support']}</td>"
        + (f"<td>{champion_per_class[label]['f1']:.3f}</td>" if label in champion_per_class else "")
        + "</tr>"
        for label, m in metrics["per_class"].items()
    )
    path.write_text(f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(metrics["run_id"])}</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:2px 10px;text-align:right}}</style></head><body>
<h1>Evaluation of {html.escape(metrics["run_id"])}</h1>
<p><b>{"BLESSED" if metrics["blessed"] else "NOT BLESSED"}</b>: {html.escape(metrics["reason"])}</p>
<p>Test accuracy {metrics["accuracy"]:.4f}, macro F1 {metrics["macro_f1"]:.4f} on {metrics["test_images"]} images
of {html.escape(metrics["dataset"])} {html.escape(metrics["version"])}.
{_champion_html(champion)}</p>
<table><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>support</th>{champion_head}</tr>{rows}</table>
<p><img src="training_curves.png" alt="training curves"></p>
<p><img src="confusion_matrix.png" alt="confusion matrix"></p>
</body></html>
""")


def _champion_html(champion: dict | None) -> str:
    if not champion:
        return "No published champion to compare with."
    return (
        f"Champion (published version {champion['version']}) on the same test split: accuracy "
        f"{champion['accuracy']:.4f}, macro F1 {champion['macro_f1']:.4f}."
    )
