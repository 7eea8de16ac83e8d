"""Helpers of the operations tests: the small pipeline they run, and following runs through the REST API."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from sparkvision.orchestration.reprocess import AirflowApi

DATASET = "fashion_mnist"
#: Seconds a run waits for its raw drop before it fails (long enough for other runs to get going).
DROP_TIMEOUT = 240
#: Small and quick: one epoch of the reference CNN, every model blessed.
FAST = {"architecture": "reference", "epochs": 1, "batch_size": 64, "min_accuracy": 0.0, "max_regression": 1.0}
SLICE = 100  # images per source split of each drop


def wait_for_run(api: AirflowApi, run_id: str, timeout: float, every: Callable[[], None] | None = None) -> dict:
    """Poll a run until it succeeds or fails (calling ``every`` at each poll); return the run."""
    deadline = time.monotonic() + timeout
    while True:
        run = api.run(run_id)
        if run["state"] in ("success", "failed"):
            return run
        if time.monotonic() > deadline:
            states = {t["task_id"]: t["state"] for t in api.task_instances(run_id)}
            raise TimeoutError(f"run {run_id} still {run['state']} after {timeout:.0f}s: {states}")
        if every:
            every()
        time.sleep(2)


def task_states(api: AirflowApi, run_id: str) -> dict[str, str | None]:
    return {task["task_id"]: task["state"] for task in api.task_instances(run_id)}


def runs_by_conf_version(api: AirflowApi) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = {}
    for run in api.get("/api/v2/dags/image_training/dagRuns?limit=100")["dag_runs"]:
        runs.setdefault((run.get("conf") or {}).get("version"), []).append(run)
    return runs


def dump(data) -> str:
    return json.dumps(data, indent=1, default=str)[:3000]
