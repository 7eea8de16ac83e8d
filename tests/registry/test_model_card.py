"""Pure parts of publishing: the model card, lineage helpers."""

from __future__ import annotations

import os

from sparkvision.registry.publish import _alive, git_commit, model_card, package_versions

METRICS = {
    "accuracy": 0.9312,
    "macro_f1": 0.931,
    "test_images": 10000,
    "reason": "test accuracy 0.9312 >= 0.8500 (no champion yet)",
    "champion": None,
    "per_class": {"bag": {"precision": 0.99, "recall": 0.98, "f1": 0.985, "support": 1000}},
}
LINEAGE = {
    "dataset": "fashion_mnist",
    "dataset_version": "v7",
    "curated_content_hash": "abc123",
    "run_id": "fashion_mnist-v7-0123abcd",
    "counts": {"train": 53932, "validation": 6068, "test": 10000},
    "train_params": {"params": {"architecture": "stronger", "epochs": 18}},
    "git_commit": "deadbeef",
    "packages": {"keras": "3.15.1"},
    "airflow_run_id": "manual__2026",
    "published_at": "2026-11-25T00:00:00Z",
}


def test_model_card_names_data_metrics_plots_params_and_code():
    card = model_card("fashion_cnn", 4, METRICS, LINEAGE)
    assert card.startswith("# fashion_cnn version 4")
    for expected in (
        "fashion_mnist v7",
        "abc123",
        "53932 / 6068 / 10000",
        "0.9312",
        "| bag | 0.990 | 0.980 | 0.985 | 1000 |",
        '"architecture": "stronger"',
        "deadbeef",
        "manual__2026",
        "![training curves](training_curves.png)",
        "![confusion matrix](confusion_matrix.png)",
    ):
        assert expected in card, expected


def test_lineage_helpers(monkeypatch):
    monkeypatch.setenv("SPARKVISION_GIT_COMMIT", "cafe42")
    assert git_commit() == "cafe42"
    versions = package_versions()
    assert "keras" in versions and "pyarrow" in versions
    assert _alive(os.getpid()) and not _alive(2**22 + 12345)
