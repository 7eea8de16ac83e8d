"""Distributed training benchmark: one worker and N workers on a local Spark standalone cluster, side by side.

    python -m bench distributed_training          (make bench BENCH=distributed_training)

Lays out Fashion-MNIST (all 70,000 images), ingests and tensorizes it on a file:// bench root
(skipped when already there), starts a standalone cluster from the pyspark wheel (one worker of
one core per training worker asked for, ``devtools.spark_cluster``) and runs the train job
(spark-submit, exactly as the DAG does) once per setting, each from scratch, then the evaluate
job. Settings, in one run:

- ``local[*]``, 1 worker: the laptop default (one TensorFlow process on every core);
- the cluster with 1 worker, then with each N of ``SPARKVISION_BENCH_WORKERS`` (default ``1,2``):
  N barrier tasks of one core each.

Recorded per setting: images/s (median epoch, all workers together, and per worker), the step
time split into computing the gradients and all-reducing and applying them (median of the timed
steps of the first epoch), epochs and training seconds, test accuracy. On a 2-core machine the
2-worker run uses both cores where the 1-worker cluster run uses one: its ratio is the scaling
efficiency of two processes synchronising over loopback, not a speed-up over the laptop default,
which already uses both cores (the ``local[*]`` row).

Size and parameters (for a quick check of the benchmark itself, not for figures)::

    SPARKVISION_BENCH_LIMIT=500 SPARKVISION_BENCH_TRAIN='{"epochs": 2}' python -m bench distributed_training
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

from bench.common import PROJECT_DIR, record

NAME = "distributed_training"
BASE = Path(os.environ.get("SPARKVISION_BENCH_DIR", "/tmp/sparkvision-bench")) / NAME
DATASET, VERSION = "fashion_mnist", "full"


def _settings() -> tuple[int | None, dict, list[int]]:
    limit = int(os.environ["SPARKVISION_BENCH_LIMIT"]) if os.environ.get("SPARKVISION_BENCH_LIMIT") else None
    train = json.loads(os.environ.get("SPARKVISION_BENCH_TRAIN", "{}"))
    workers = [int(n) for n in os.environ.get("SPARKVISION_BENCH_WORKERS", "1,2").split(",")]
    return limit, train, workers


def spark_submit(job: str, master: str, args: list[str]) -> float:
    """Run spark_jobs/<job>.py like the DAG does; return its wall seconds."""
    submit = shutil.which("spark-submit") or str(Path(sys.executable).parent / "spark-submit")
    command = [
        submit,
        "--master",
        master,
        "--conf",
        "spark.ui.enabled=false",
        str(PROJECT_DIR / "spark_jobs" / f"{job}.py"),
        *args,
    ]
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=PROJECT_DIR, env={**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"})
    return time.perf_counter() - started


def measure(label: str, master: str, root: Path, workers: int, train: dict, common: list[str]) -> dict:
    """Train from scratch with ``workers`` workers on ``master``, evaluate; return the figures."""
    from sparkvision.config.runconfig import RunConfig

    model = f"bench_{label}"
    overrides = {"model": model, "workers": workers, **train}
    args = [*common, *(f"{key}={value}" for key, value in overrides.items())]
    config = RunConfig.from_overrides(root.as_uri(), [f"dataset={DATASET}", f"version={VERSION}", *args[2:]])
    run_dir = root / "runs" / model / config.run_id
    shutil.rmtree(run_dir, ignore_errors=True)
    job_seconds = spark_submit("train", master, args)
    spark_submit("evaluate", "local[*]", args)
    summary = json.loads((run_dir / "history.json").read_text())
    metrics = json.loads((run_dir / "evaluation" / "metrics.json").read_text())
    results = summary["worker_results"]
    steady = summary["history"]["images_per_s"][1:] or summary["history"]["images_per_s"]
    return {
        "label": label,
        "workers": summary["workers"],
        "images_per_s": median(steady),
        "per_worker_images_per_s": [r["images_per_s"] or 0 for r in results],
        "compute_ms": median([r["step_compute_ms"] for r in results if r["step_compute_ms"] is not None] or [0]),
        "all_reduce_ms": median(
            [r["step_all_reduce_ms"] for r in results if r["step_all_reduce_ms"] is not None] or [0]
        ),
        "epochs": summary["epochs"],
        "planned_epochs": summary["planned_epochs"],
        "train_seconds": summary["train_seconds"],
        "job_seconds": round(job_seconds, 1),
        "accuracy": metrics["accuracy"],
        "global_batch": summary["global_batch"],
    }


def run(argv: list[str]) -> dict:
    from devtools import spark_cluster
    from devtools.rawdrop import lay_out

    limit, train, worker_counts = _settings()
    root = BASE / f"root-{limit or 'all'}"
    common = ["--root", root.as_uri(), f"dataset={DATASET}", f"version={VERSION}"]
    lay_out(root.as_uri(), DATASET, VERSION, limit)
    if not (root / "curated" / DATASET / VERSION / "_SUCCESS").exists():
        spark_submit("ingest", "local[*]", common)
    if not (root / "tensors" / DATASET / VERSION / "_SUCCESS").exists():
        spark_submit("tensorize", "local[*]", common)
    measured = [measure("local", "local[*]", root, 1, train, common)]
    with tempfile.TemporaryDirectory(prefix="sparkvision-bench-spark-") as folder:
        cluster = spark_cluster.with_free_ports(folder, workers=max(worker_counts), cores=1, memory="3g")
        cluster.start()
        try:
            for workers in worker_counts:
                measured.append(measure(f"cluster{workers}", cluster.master_url, root, workers, train, common))
        finally:
            cluster.stop()
    base = next(m for m in measured if m["label"] == "cluster1") if 1 in worker_counts else None
    rows = []
    for m in measured:
        where = (
            "local[*], 1 worker on every core"
            if m["label"] == "local"
            else f"standalone cluster, {m['workers']} worker(s) x 1 core"
        )
        ratio = ""
        if base is not None and m is not base and m["label"] != "local":
            efficiency = m["images_per_s"] / (m["workers"] * base["images_per_s"])
            ratio = f"{m['images_per_s'] / base['images_per_s']:.2f}x 1 worker; scaling efficiency {efficiency:.0%}"
        rows.append(
            {
                "figure": f"{where}: images/s (median epoch; per worker)",
                "value": f"{m['images_per_s']:,.0f} ({' + '.join(f'{r:,.0f}' for r in m['per_worker_images_per_s'])})",
                "ratio": ratio,
            }
        )
        rows.append(
            {
                "figure": f"{where}: step time, gradients / all-reduce and update",
                "value": f"{m['compute_ms']:.1f} ms / {m['all_reduce_ms']:.1f} ms (global batch {m['global_batch']})",
            }
        )
        rows.append(
            {
                "figure": f"{where}: test accuracy",
                "value": f"{m['accuracy']:.4f} after {m['epochs']} epochs ({m['train_seconds']:.0f} s of training, "
                f"train job {m['job_seconds']:.0f} s)",
            }
        )
    size = (
        f"the first {limit} images of each split (a check of the benchmark, not a measurement)"
        if limit
        else "the full Fashion-MNIST (60,000 train / 10,000 test)"
    )
    notes = (
        f"Data: {size}. Training parameters: the defaults{f' with {train}' if train else ''}; each setting trains "
        "from scratch. Images/s: all workers together, the first epoch (graph tracing) left out. Step time: median of "
        "the steps of the first epoch timed in two halves (each worker), so the all-reduce includes waiting for the "
        "slower worker. On 2 cores the cluster's 2 workers use both cores where its 1 worker uses one; the local[*] "
        "row is what a laptop runs by default."
    )
    return record(NAME, rows, "make bench BENCH=distributed_training", details={"settings": measured}, notes=notes)


if __name__ == "__main__":
    run(sys.argv[1:])
