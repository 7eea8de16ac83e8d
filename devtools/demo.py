"""The demo: the full Fashion-MNIST through image_training on the embedded defaults.

``make demo`` (``scripts/demo.sh``) runs this after set-up::

    python -m devtools.demo --version v1 [--limit N] [-c '{"epochs": 2}']

It lays out the raw drop (skipped when complete), runs ``airflow dags test image_training``
for that version, keeps the full log under ``data/logs/``, echoes the progress lines, and ends
with the stage timings, this run's evaluation (blessed or not, and why), and the published model
(``LATEST``: this run's, or an earlier run's when this one was not published) with its accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from sparkvision.config.params import default
from sparkvision.platform.layout import ModelPaths
from sparkvision.platform.settings import PROJECT_DIR, storage_root

#: Log lines worth echoing while the DAG runs.
PROGRESS = re.compile(r"\[DAG TEST\] (starting|end task) task_id=\w+|sparkvision\.[\w.]+: |BLESSED|NOT PUBLISHED")
TASK_EVENT = re.compile(r"^(\S+Z) \[info\s*\] \[DAG TEST\] (starting|end task) task_id=(\w+)")


def stage_timings(log: str) -> dict[str, float]:
    """Seconds per task, from the start and end lines that ``airflow dags test`` logs."""
    started: dict[str, datetime] = {}
    seconds: dict[str, float] = {}
    for line in log.splitlines():
        match = TASK_EVENT.match(line)
        if not match:
            continue
        stamp = datetime.fromisoformat(match.group(1).replace("Z", "+00:00"))
        if match.group(2) == "starting":
            started[match.group(3)] = stamp
        elif match.group(3) in started:
            seconds[match.group(3)] = round((stamp - started[match.group(3)]).total_seconds(), 1)
    return seconds


def run_dag(version: str, conf: dict, log_path: Path) -> tuple[str, float]:
    """Run image_training for ``version`` under ``airflow dags test``; return (log, seconds)."""
    command = ["airflow", "dags", "test", "image_training", "-c", json.dumps({"version": version, **conf})]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    lines = []
    with (
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc,
        open(log_path, "w") as log_file,
    ):
        for line in proc.stdout:
            log_file.write(line)
            lines.append(line)
            if PROGRESS.search(line):
                print("  " + _short(line), flush=True)
    log = "".join(lines)
    if proc.returncode != 0 or "state=success" not in log.split("DagRun Finished", 1)[-1]:
        raise SystemExit(f"image_training failed for version {version}; full log: {log_path}")
    return log, time.monotonic() - started


def _short(line: str) -> str:
    line = line.rstrip()
    for marker in ("[DAG TEST] ", "sparkvision."):
        if marker in line:
            text = line[line.index(marker) :]
            return re.sub(r"\s+\[[\w.]+\] loc=\S+.*$", "", text)
    return line[-200:]


def published_summary(root: str, model: str) -> dict:
    """LATEST's version, path and metrics (read locally on file://, through WebHDFS on HDFS)."""
    from sparkvision.orchestration.io import read_json, read_text

    paths = ModelPaths(root, model)
    version = int(read_text(paths.latest_pointer).strip())
    metrics = read_json(f"{paths.version(version)}/metrics.json")
    return {
        "version": version,
        "uri": paths.version(version),
        "accuracy": metrics["accuracy"],
        "run_id": metrics["run_id"],
        "epochs": metrics.get("epochs"),
    }


def run_verdict(root: str, values: dict) -> dict:
    """This run's id and its evaluation's verdict (accuracy, blessed, reason), when it got that far."""
    from sparkvision.config.runconfig import RunConfig
    from sparkvision.orchestration.io import exists, read_json

    config = RunConfig.build(root, values)
    evaluation = f"{config.model_paths.evaluation(config.run_id)}/metrics.json"
    if not exists(evaluation):
        return {"run_id": config.run_id}
    metrics = read_json(evaluation)
    return {"run_id": config.run_id, **{key: metrics.get(key) for key in ("accuracy", "blessed", "reason")}}


def verdict_lines(run: dict, published: dict) -> list[str]:
    """The demo's last lines: this run's evaluation, then what LATEST is (this run or an earlier one)."""
    if run.get("accuracy") is None:
        lines = [f"this run:        {run['run_id']} (no evaluation: see the log)"]
    else:
        verdict = "blessed" if run["blessed"] else "NOT blessed"
        lines = [f"this run:        {run['run_id']}, test accuracy {run['accuracy']:.4f}, {verdict}: {run['reason']}"]
    whose = "this run" if published["run_id"] == run["run_id"] else "an earlier run; this run was not published"
    lines.append(f"published model: {published['uri']}  (version {published['version']}, {whose})")
    lines.append(f"test accuracy:   {published['accuracy']:.4f}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", default="v1")
    parser.add_argument("--limit", type=int, default=None, help="first N images per split (default: all)")
    parser.add_argument("-c", "--conf", default="{}", help="extra DAG parameters as JSON")
    parser.add_argument("--timings-out", type=Path, help="also write the stage timings here (JSON)")
    args = parser.parse_args(argv)
    root = storage_root()
    conf = json.loads(args.conf)
    dataset = default("dataset")
    print(f"sparkvision demo: dataset {dataset} version {args.version} under {root}")
    from devtools.rawdrop import lay_out

    started = time.monotonic()
    lay_out(root, dataset, args.version, args.limit)
    drop_seconds = time.monotonic() - started
    print(f"raw drop ready ({drop_seconds:.1f}s); running image_training (airflow dags test)")
    log_path = PROJECT_DIR / "data" / "logs" / f"demo-{args.version}-{time.strftime('%Y%m%dT%H%M%S')}.log"
    log, dag_seconds = run_dag(args.version, conf, log_path)
    timings = stage_timings(log)
    summary = published_summary(root, conf.get("model", default("model")))
    print("\nstage timings (s):")
    for task, seconds in timings.items():
        print(f"  {task:<22}{seconds:>8.1f}")
    print(f"  {'whole DAG run':<22}{dag_seconds:>8.1f}   (raw drop before it: {drop_seconds:.1f})")
    publish_lines = [
        _short(line) for line in log.splitlines() if "sparkvision.registry.publish:" in line or "NOT BLESSED" in line
    ]
    if publish_lines:
        print("\npublish: " + publish_lines[-1].split(": ", 1)[-1])
    print()
    for line in verdict_lines(run_verdict(root, {"dataset": dataset, "version": args.version, **conf}), summary):
        print(line)
    print(f"full log:        {log_path}")
    if args.timings_out:
        args.timings_out.write_text(
            json.dumps(
                {
                    "stages": timings,
                    "dag_seconds": round(dag_seconds, 1),
                    "raw_drop_seconds": round(drop_seconds, 1),
                    **summary,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
