"""The full Fashion-MNIST through image_training, as `make demo` runs it (`make test-e2e`; about 11 min).

Not part of `make test`: it trains the default CNN for its whole 10-minute budget. The accuracy
figure the project aims for (>= 0.93) is a benchmark on a quiet machine (docs/benchmarks.md);
here the floor is that the model learned and was blessed and published with its lineage.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e


def test_demo_publishes_a_blessed_model_trained_on_all_70000_images(tmp_path, project_dir):
    root = tmp_path / "root"
    env = {**os.environ, "SPARKVISION_ROOT": root.as_uri(), "AIRFLOW_HOME": str(tmp_path / "airflow")}
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True)
    timings = tmp_path / "timings.json"
    subprocess.run(
        [sys.executable, "-m", "devtools.demo", "--version", "e2e", "--timings-out", str(timings)],
        env=env,
        cwd=project_dir,
        check=True,
        timeout=3600,
    )
    summary = json.loads(timings.read_text())
    assert summary["version"] == 1 and summary["accuracy"] >= 0.90
    manifest = json.loads((root / "curated" / "fashion_mnist" / "e2e" / "manifest.json").read_text())
    assert (manifest["files_found"], manifest["accepted"], manifest["rejected"]) == (70_000, 70_000, 0)
    lineage = json.loads((root / "models" / "fashion_cnn" / "1" / "lineage.json").read_text())
    assert lineage["curated_content_hash"] == manifest["content_hash"] and lineage["counts"]["test"] == 10_000
    assert {"ingest", "tensorize", "train", "evaluate", "publish"} <= set(summary["stages"])
