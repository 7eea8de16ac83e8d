"""Stage timings of the demo: the full Fashion-MNIST through image_training on a fresh root.

    python -m bench demo_stages

Runs ``python -m devtools.demo`` against an empty root under data/bench/ (so every stage does
its full work, nothing is skipped as already done) and records each task's seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from bench.common import PROJECT_DIR, record

COMMAND = "make bench BENCH=demo_stages"


def run(argv: list[str]) -> dict:
    root_dir = PROJECT_DIR / "data" / "bench" / "demo-root"
    home = PROJECT_DIR / "data" / "bench" / "demo-airflow"
    for folder in (root_dir, home):
        shutil.rmtree(folder, ignore_errors=True)
    home.mkdir(parents=True)
    out = PROJECT_DIR / "data" / "bench" / "demo_stages.json"
    env = {**os.environ, "SPARKVISION_ROOT": root_dir.as_uri(), "AIRFLOW_HOME": str(home)}
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True)
    subprocess.run(
        [sys.executable, "-m", "devtools.demo", "--version", "bench", "--timings-out", str(out)], env=env, check=True
    )
    result = json.loads(out.read_text())
    rows = [{"figure": f"task `{task}`", "value": f"{seconds:.1f} s"} for task, seconds in result["stages"].items()]
    rows += [
        {"figure": "whole DAG run (airflow dags test)", "value": f"{result['dag_seconds']:.1f} s"},
        {"figure": "raw drop (70,000 PNG files)", "value": f"{result['raw_drop_seconds']:.1f} s"},
        {
            "figure": "published model test accuracy",
            "value": f"{result['accuracy']:.4f}",
            "ratio": "target >= 0.88 (issue 2)",
            "target_met": result["accuracy"] >= 0.88,
        },
    ]
    return record(
        "demo_stages",
        rows,
        COMMAND,
        details=result,
        notes="Full Fashion-MNIST (60,000 train / 10,000 test), default DAG parameters, "
        "SQLite Airflow, Spark local[*], file:// root; every stage from scratch.",
    )
