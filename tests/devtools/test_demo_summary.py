"""The demo's last lines say whether this run was blessed and whether LATEST is this run."""

from __future__ import annotations

import json
from pathlib import Path

from devtools.demo import run_verdict, verdict_lines
from sparkvision.config.runconfig import RunConfig
from sparkvision.platform.layout import uri_path

PUBLISHED = {"uri": "file:///r/models/fashion_cnn/1", "version": 1, "run_id": "fashion_mnist-v1-aaaa", "accuracy": 0.93}


def test_a_run_that_was_published_says_so():
    run = {"run_id": "fashion_mnist-v1-aaaa", "accuracy": 0.93, "blessed": True, "reason": "first version"}
    lines = verdict_lines(run, PUBLISHED)
    assert lines[0] == "this run:        fashion_mnist-v1-aaaa, test accuracy 0.9300, blessed: first version"
    assert lines[1] == "published model: file:///r/models/fashion_cnn/1  (version 1, this run)"
    assert lines[2] == "test accuracy:   0.9300"


def test_a_run_that_was_not_blessed_does_not_pass_for_the_published_model():
    run = {"run_id": "fashion_mnist-v2-bbbb", "accuracy": 0.91, "blessed": False, "reason": "worse than the champion"}
    lines = verdict_lines(run, PUBLISHED)
    assert "test accuracy 0.9100, NOT blessed: worse than the champion" in lines[0]
    assert "(version 1, an earlier run; this run was not published)" in lines[1]
    assert lines[2] == "test accuracy:   0.9300"


def test_the_verdict_is_read_from_this_runs_evaluation(tmp_path):
    root = (tmp_path / "root").as_uri()
    values = {"dataset": "fashion_mnist", "version": "v7", "epochs": 3}
    config = RunConfig.build(root, values)
    assert run_verdict(root, values) == {"run_id": config.run_id}  # not evaluated yet
    evaluation = Path(uri_path(config.model_paths.evaluation(config.run_id)))
    evaluation.mkdir(parents=True)
    metrics = {"accuracy": 0.88, "blessed": False, "reason": "below min_accuracy", "run_id": config.run_id}
    (evaluation / "metrics.json").write_text(json.dumps(metrics))
    verdict = run_verdict(root, values)
    assert verdict == {"run_id": config.run_id, "accuracy": 0.88, "blessed": False, "reason": "below min_accuracy"}
    assert config.run_id.startswith("fashion_mnist-v7-")
