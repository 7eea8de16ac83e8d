"""Training-quality benchmark: the default configuration on the full Fashion-MNIST.

    python -m bench training_quality          (make bench BENCH=training_quality)

Lays out the full dataset (70,000 images) under a bench root, ingests and tensorizes it with the
real Spark jobs (skipped when already there), then runs the train and evaluate jobs exactly as the
``image_training`` DAG does with its default parameters, from scratch (the run directory is removed
first). Records the test accuracy (target >= 0.93), the training time (target <= 10 minutes on this
machine), the epochs run and the training speed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.common import PROJECT_DIR, record

NAME = "training_quality"
ROOT = Path(os.environ.get("SPARKVISION_BENCH_DIR", "/tmp/sparkvision-bench")) / NAME / "root"
DATASET, VERSION, MODEL = "fashion_mnist", "full", "bench_cnn"
TARGET_ACCURACY = 0.93
TARGET_SECONDS = 600


def spark_submit(job: str, *args: str) -> float:
    """Run spark_jobs/<job>.py like the DAG does; return its wall time in seconds."""
    submit = shutil.which("spark-submit") or str(Path(sys.executable).parent / "spark-submit")
    command = [submit, "--conf", "spark.ui.enabled=false", str(PROJECT_DIR / "spark_jobs" / f"{job}.py"), *args]
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=PROJECT_DIR, env={**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"})
    return time.perf_counter() - started


def run(argv: list[str]) -> dict:
    from devtools.rawdrop import lay_out
    from sparkvision.config.runconfig import RunConfig

    root = ROOT.as_uri()
    config = RunConfig.build(root, {"dataset": DATASET, "version": VERSION, "model": MODEL})
    args = ["--root", root, f"dataset={DATASET}", f"version={VERSION}", f"model={MODEL}"]
    lay_out(root, DATASET, VERSION)
    if not (ROOT / "curated" / DATASET / VERSION / "_SUCCESS").exists():
        spark_submit("ingest", *args)
    if not (ROOT / "tensors" / DATASET / VERSION / "_SUCCESS").exists():
        spark_submit("tensorize", *args)
    params = config.train
    run_dir = ROOT / "runs" / MODEL / config.run_id
    shutil.rmtree(run_dir, ignore_errors=True)  # measure a training from scratch
    job_seconds = spark_submit("train", *args)
    spark_submit("evaluate", *args)
    summary = json.loads((run_dir / "history.json").read_text())
    metrics = json.loads((run_dir / "evaluation" / "metrics.json").read_text())
    stats = json.loads((ROOT / "tensors" / DATASET / VERSION / "stats.json").read_text())
    history = summary["history"]
    seconds = summary["train_seconds"]
    rows = [
        {
            "figure": f"test accuracy, default `{params.architecture}` CNN on the full Fashion-MNIST test split",
            "value": f"{metrics['accuracy']:.4f} on {metrics['test_images']:,} images "
            f"(macro F1 {metrics['macro_f1']:.4f})",
            "ratio": f"target >= {TARGET_ACCURACY}",
            "target_met": metrics["accuracy"] >= TARGET_ACCURACY,
        },
        {
            "figure": f"training time ({summary['epochs']} epochs of {stats['counts']['train']:,} images, best epoch "
            f"{summary['best_epoch']}, incl. validation)",
            "value": f"{seconds:.0f} s ({seconds / 60:.1f} min); train job wall {job_seconds:.0f} s",
            "ratio": f"target <= {TARGET_SECONDS // 60} min",
            "target_met": seconds <= TARGET_SECONDS,
        },
        {
            "figure": "training speed (median epoch, streamed Parquet input)",
            "value": f"{sorted(history['images_per_s'])[len(history['images_per_s']) // 2]:,.0f} images/s",
        },
    ]
    notes = (
        f"Parameters: `{json.dumps(params.__dict__, sort_keys=True)}`; evaluation defaults {config.evaluate}. "
        f"Blessed: {metrics['blessed']} ({metrics['reason']}). Validation accuracy per epoch: "
        f"{[round(v, 4) for v in history.get('val_accuracy', [])]}."
    )
    return record(
        NAME,
        rows,
        "python -m bench training_quality",
        details={"summary": summary, "accuracy": metrics["accuracy"], "run_dir": str(run_dir), "model": MODEL},
        notes=notes,
    )


if __name__ == "__main__":
    run(sys.argv[1:])
