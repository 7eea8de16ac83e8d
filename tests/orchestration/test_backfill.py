"""Schedules and backfills for real: `airflow backfill create` over dated drops, then re-processing
named versions with the documented command, on the session's production-like stack.

Four dates, three drops: each date's run processes its own dataset version; the date whose drop
never arrives fails with the reason while the later dates go on; the Spark jobs of all runs
never overlap (one pool) and the models are published in date order.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.rawdrop import lay_out
from sparkvision.platform.layout import SUCCESS, DatasetPaths, uri_path
from tests.orchestration.helpers import DATASET, DROP_TIMEOUT, FAST, SLICE, dump, wait_for_run

pytestmark = pytest.mark.integration

DATES = ["2026-11-02", "2026-11-03", "2026-11-04", "2026-11-05"]
MISSING = "2026-11-03"
SPARK_TASKS = ("ingest", "tensorize", "train", "evaluate", "publish")


def version_of(date: str) -> str:
    return date.replace("-", "")


@pytest.fixture(scope="module")
def backfilled(stack, api, stack_root) -> dict[str, dict]:
    """The backfill's runs by date, each followed to its end."""
    for date in DATES:
        if date != MISSING:
            lay_out(stack_root, DATASET, version_of(date), limit=SLICE)
    stack.airflow(
        "backfill", "create", "--dag-id", "image_training", "--from-date", DATES[0], "--to-date", DATES[-1],
        "--dag-run-conf", json.dumps(FAST), capture_output=True, text=True,
    )  # fmt: skip
    runs = {}
    for run in api.get("/api/v2/dags/image_training/dagRuns?run_type=backfill&limit=50")["dag_runs"]:
        runs[run["logical_date"][:10]] = run
    assert sorted(runs) == DATES, dump(runs)
    return {date: wait_for_run(api, run["dag_run_id"], timeout=3 * 240 + DROP_TIMEOUT) for date, run in runs.items()}


def test_backfill_processes_each_dates_drop_as_its_own_version_in_order(api, backfilled, stack_root):
    states = {date: run["state"] for date, run in backfilled.items()}
    assert states == {date: "failed" if date == MISSING else "success" for date in DATES}

    # each date's drop became its own curated dataset version (the missing one: nothing)
    for date in DATES:
        curated = Path(uri_path(DatasetPaths(stack_root, DATASET, version_of(date)).curated)) / SUCCESS
        assert curated.exists() == (date != MISSING), date

    # the missing date ended with its reason; the next dates did not wait for it
    sensor = next(
        t for t in api.task_instances(backfilled[MISSING]["dag_run_id"]) if t["task_id"] == "wait_for_raw_drop"
    )
    reason = api.error_of(backfilled[MISSING]["dag_run_id"], sensor)
    assert f"raw/{DATASET}/{version_of(MISSING)}/_SUCCESS" in reason and "never arrived" in reason, reason
    later = {
        d: {t["task_id"]: t for t in api.task_instances(backfilled[d]["dag_run_id"])} for d in DATES if d > MISSING
    }
    for date, tasks in later.items():  # found their drops and went on while the missing one waited
        assert tasks["wait_for_raw_drop"]["end_date"] < sensor["end_date"], date
    assert min(tasks["ingest"]["start_date"] for tasks in later.values()) < sensor["end_date"]

    # one Spark job at a time across all runs (the pool), and the models published in date order
    intervals = []
    for run in backfilled.values():
        for task in api.task_instances(run["dag_run_id"]):
            if task["task_id"] in SPARK_TASKS and task["state"] == "success":  # not the upstream_failed ones
                intervals.append((task["start_date"], task["end_date"], run["dag_run_id"], task["task_id"]))
    intervals.sort()
    for earlier, later_job in itertools.pairwise(intervals):
        assert earlier[1] <= later_job[0], f"Spark jobs overlapped: {earlier} and {later_job}"
    published = api.get("/sparkvision/api/models")["models"]["fashion_cnn"]
    backfill_versions = {version_of(d) for d in DATES}
    order = [row["dataset_version"] for row in sorted(published, key=lambda r: r["version"])]
    assert [v for v in order if v in backfill_versions] == sorted(backfill_versions - {version_of(MISSING)})


def test_named_versions_are_reprocessed_through_the_rest_api(stack, backfilled):
    """The documented command: one run per named version, each outcome reported."""
    versions = [version_of(DATES[0]), version_of(DATES[2])]
    command = [sys.executable, "-m", "sparkvision.orchestration.reprocess", "--url", stack.url]
    command += ["--password-file", str(stack.passwords_file), "--timeout", "600", "--poll", "2", "-c", json.dumps(FAST)]
    result = subprocess.run([*command, *versions], env=stack.env(), capture_output=True, text=True, timeout=700)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = {
        line.split()[0]: line for line in result.stdout.splitlines() if line.split() and line.split()[0] in versions
    }
    assert sorted(lines) == sorted(versions), result.stdout
    for line in lines.values():
        assert " success " in line and ("published fashion_cnn version" in line or "no new model version" in line), line


def test_admin_rolls_latest_back(stack, api, backfilled, login, output_dir):
    page = login("admin")
    page.goto(f"{stack.url}/plugin/sparkvision-models")
    frame = page.frame_locator("iframe")
    buttons = frame.get_by_role("button", name="make LATEST")
    buttons.first.wait_for()
    assert buttons.count() == len(api.get("/sparkvision/api/models")["models"]["fashion_cnn"]) - 1
    (output_dir / "ui").mkdir(exist_ok=True)
    page.screenshot(path=output_dir / "ui" / "09-models-after-backfill.png")

    target = min(row["version"] for row in api.get("/sparkvision/api/models")["models"]["fashion_cnn"])
    with page.expect_response(lambda response: "/rollback/" in response.url) as answer:
        buttons.last.click()  # the oldest version's row is the last
    assert answer.value.status == 303  # back to the listing
    latest = [row for row in api.get("/sparkvision/api/models")["models"]["fashion_cnn"] if row["latest"]]
    assert [row["version"] for row in latest] == [target]
    page.goto(f"{stack.url}/plugin/sparkvision-models")
    marked = page.frame_locator("iframe").locator("tr:has(span.latest)")  # not the "make LATEST" buttons
    marked.wait_for()
    assert marked.count() == 1 and marked.inner_text().split()[0] == str(target)
