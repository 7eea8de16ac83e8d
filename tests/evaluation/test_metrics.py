"""Evaluation metrics and the blessing rule."""

from __future__ import annotations

import numpy as np
import pytest

from sparkvision.config.params import EvalParams
from sparkvision.evaluation.metrics import bless, classification_metrics, confusion_matrix
from sparkvision.evaluation.report import write_plots, write_report


def test_confusion_matrix_and_metrics():
    y_true = np.array([0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 1, 1, 1, 2, 0])
    matrix = confusion_matrix(y_true, y_pred, 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    metrics = classification_metrics(matrix, ["a", "b", "c"])
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["per_class"]["b"] == {"precision": 0.6667, "recall": 1.0, "f1": 0.8, "support": 2}
    assert metrics["per_class"]["c"]["precision"] == 1.0 and metrics["per_class"]["c"]["recall"] == 0.5
    assert metrics["test_images"] == 6


def test_a_class_never_predicted_has_zero_precision_not_nan():
    metrics = classification_metrics(confusion_matrix(np.array([0, 1]), np.array([0, 0]), 2), ["a", "b"])
    assert metrics["per_class"]["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}


@pytest.mark.parametrize(
    ("accuracy", "champion", "blessed", "why"),
    [
        (0.93, None, True, "no champion"),
        (0.80, None, False, "below min_accuracy"),
        (0.93, 0.932, True, "champion"),  # within the tolerance
        (0.92, 0.94, False, "worse than the champion"),
        (0.95, 0.94, True, "champion"),
    ],
)
def test_bless(accuracy, champion, blessed, why):
    ok, reason = bless(accuracy, champion, EvalParams(min_accuracy=0.85, max_regression=0.005))
    assert ok is blessed and why in reason


def test_eval_params_validation():
    with pytest.raises(ValueError):
        EvalParams(min_accuracy=1.5)
    with pytest.raises(ValueError):
        EvalParams(max_regression=-0.1)


def test_plots_and_report(tmp_path):
    history = tmp_path / "history.csv"
    history.write_text("epoch,accuracy,loss,val_accuracy,val_loss\n0,0.8,0.5,0.82,0.45\n1,0.9,0.3,0.88,0.35\n")
    matrix = np.array([[5, 1], [2, 7]])
    write_plots(tmp_path, matrix, ["a", "b"], history)
    for name in ("confusion_matrix.png", "training_curves.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    metrics = {
        **classification_metrics(matrix, ["a", "b"]),
        "run_id": "r1",
        "dataset": "d",
        "version": "v1",
        "champion": None,
        "blessed": False,
        "reason": "test accuracy 0.8 is below <min>",
    }
    write_report(tmp_path, metrics)
    text = (tmp_path / "report.html").read_text()
    assert "NOT BLESSED" in text and "&lt;min&gt;" in text and "confusion_matrix.png" in text
    assert "No published champion" in text
    champion = {"version": 3, **classification_metrics(np.array([[6, 0], [1, 8]]), ["a", "b"])}
    write_report(tmp_path, {**metrics, "champion": champion})
    text = (tmp_path / "report.html").read_text()
    assert "published version 3" in text and "champion F1" in text
