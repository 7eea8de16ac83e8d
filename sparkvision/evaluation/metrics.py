"""Classification metrics and the blessing rule: pure functions."""

from __future__ import annotations

import numpy as np

from sparkvision.config.params import EvalParams


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
