"""The path users take, in a real browser: log in, trigger from the form, watch the run, see the model.

Headless Debian Chromium (Playwright from PyPI) against the session's production-like stack.
While the browser's run goes through scheduler and executor, two runs of versions that were never
dropped wait for their drops (and the daily run the unpause created waits for today's): with two
executor slots, waiting must hold none, or the browser's run could not start. Screenshots land
in ``data/test-output/ui/``.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from datetime import UTC, datetime

import pytest

from devtools.rawdrop import lay_out
from sparkvision.config.params import PARAMETERS
from sparkvision.orchestration.reprocess import ApiError
from tests.orchestration.helpers import (
    DATASET,
    DROP_TIMEOUT,
    FAST,
    SLICE,
    runs_by_conf_version,
    task_states,
    wait_for_run,
)

pytestmark = pytest.mark.integration

VERSION = "ui1"


@pytest.fixture(scope="module")
def screenshots(output_dir):
    folder = output_dir / "ui"
    folder.mkdir(exist_ok=True)
    return folder


def field(dialog, name: str):
    """The input of the form field labelled ``name`` (the label's text is the parameter's name)."""
    label = dialog.locator("label[data-part=label]").filter(has_text=re.compile(rf"^\s*{name}\s*\*?\s*$"))
    return dialog.locator(f"[id='{label.first.get_attribute('for')}']")


def open_trigger_form(page, stack):
    page.goto(f"{stack.url}/dags/image_training")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("button", name="Run", exact=True).click()
    return dialog


def test_browser_refuses_a_hostile_version_and_a_valid_trigger_runs_to_success(
    login, stack, api, stack_root, waiting_runs, screenshots
):
    lay_out(stack_root, DATASET, VERSION, limit=SLICE)
    page = login("admin")
    page.screenshot(path=screenshots / "01-signed-in.png")

    # the form: every field of its first section with its description
    dialog = open_trigger_form(page, stack)
    for declared in PARAMETERS:
        if declared.section == "Run":
            assert dialog.get_by_text(declared.help, exact=True).is_visible(), declared.name

    # a hostile version: the page shows the refusal, no run is created
    dialog.locator("#element_version").fill("../x")
    dialog.get_by_role("button", name="Trigger").click()
    refusal = dialog.get_by_text(re.compile(r"Invalid input for param version"))
    refusal.wait_for()
    page.screenshot(path=screenshots / "02-hostile-version-refused.png")
    assert "../x" not in runs_by_conf_version(api)

    # a valid trigger on a small slice
    dialog.locator("#element_version").fill(VERSION)
    dialog.get_by_role("button", name="Training", exact=True).click()
    field(dialog, "architecture").fill(FAST["architecture"])
    field(dialog, "architecture").press("Enter")
    for name in ("epochs", "batch_size"):
        field(dialog, name).fill(str(FAST[name]))
    dialog.get_by_role("button", name="Blessing", exact=True).click()
    for name in ("min_accuracy", "max_regression"):
        field(dialog, name).fill(str(FAST[name]))
    page.screenshot(path=screenshots / "03-trigger-form.png", full_page=True)
    dialog.get_by_role("button", name="Trigger").click()
    dialog.wait_for(state="detached")
    runs = runs_by_conf_version(api)
    assert len(runs.get(VERSION, [])) == 1, runs.keys()
    run = runs[VERSION][0]
    assert run["conf"]["architecture"] == "reference" and run["conf"]["epochs"] == 1, run["conf"]

    # it runs through the scheduler and the executor while the never-dropped versions wait, deferred:
    # with two executor slots and three runs waiting (these two and today's scheduled one), the
    # Spark jobs could not start before the drop timeout if waiting held a slot
    seen_waiting: set[str] = set()

    def waiting_holds_no_slot():
        for version, run_id in waiting_runs.items():
            state = task_states(api, run_id)["wait_for_raw_drop"]
            assert state in (None, "scheduled", "queued", "running", "deferred", "failed"), (version, state)
            seen_waiting.add(state)

    finished = wait_for_run(api, run["dag_run_id"], timeout=DROP_TIMEOUT + 300, every=waiting_holds_no_slot)
    tasks = {task["task_id"]: task for task in api.task_instances(run["dag_run_id"])}
    assert finished["state"] == "success", {t: task["state"] for t, task in tasks.items()}
    assert "deferred" in seen_waiting
    for run_id in waiting_runs.values():
        sensor = next(t for t in api.task_instances(run_id) if t["task_id"] == "wait_for_raw_drop")
        assert sensor["state"] in ("deferred", "failed"), sensor
        if sensor["end_date"]:  # it timed out meanwhile: after this run's Spark jobs had started
            assert tasks["ingest"]["start_date"] < sensor["end_date"], (tasks["ingest"], sensor)
    page.goto(f"{stack.url}/dags/image_training/runs/{run['dag_run_id']}")
    page.get_by_text("success").first.wait_for()
    page.screenshot(path=screenshots / "04-run-succeeded.png")

    # the models page (the plugin's "Models" view in the UI's frame) shows the new version and its plots
    published = api.xcom(run["dag_run_id"], "announce")
    page.goto(f"{stack.url}/plugin/sparkvision-models")
    frame = page.frame_locator("iframe")
    row = frame.get_by_role("row").filter(has_text=f"{DATASET} {VERSION}")
    row.wait_for()
    assert "LATEST" in row.inner_text()
    page.screenshot(path=screenshots / "05-models.png")
    frame.get_by_role("link", name=str(published["version"]), exact=True).click()
    for plot in ("training-curves", "confusion-matrix"):
        image = frame.locator(f"#{plot}")
        image.wait_for()
        assert image.evaluate("img => img.complete && img.naturalWidth > 0"), plot
    assert f"{published['model']} version {published['version']}" in frame.locator("#model-card").inner_text()
    page.screenshot(path=screenshots / "06-model-version.png", full_page=True)

    # the evaluate and publish task instances link to the run's report and the version
    links = {
        task: api.get(f"/api/v2/dags/image_training/dagRuns/{run['dag_run_id']}/taskInstances/{task}/links")
        for task in ("evaluate", "publish")
    }
    assert links["publish"]["extra_links"]["Published model version"].endswith(
        f"/sparkvision/models/{published['model']}/{published['version']}"
    )
    report = links["evaluate"]["extra_links"]["Evaluation report"]
    page.goto(stack.url + report)
    assert "fashion" in page.content().lower()


def test_a_run_waiting_for_a_missing_drop_times_out_with_its_reason(api, waiting_runs):
    """The never-dropped versions end failed, saying which drop never arrived (no retry); so does
    the daily run the unpause created, which waited for the drop named by its logical date."""
    scheduled = api.get("/api/v2/dags/image_training/dagRuns?run_type=scheduled")["dag_runs"]
    start = api.get("/api/v2/dags/image_training/details")["start_date"]
    assert scheduled or datetime.now(UTC).isoformat() < start, "unpausing created no scheduled run"
    daily = {run["logical_date"][:10].replace("-", ""): run["dag_run_id"] for run in scheduled}
    for version, run_id in {**waiting_runs, **daily}.items():
        finished = wait_for_run(api, run_id, timeout=DROP_TIMEOUT + 120)
        assert finished["state"] == "failed"
        sensor = next(t for t in api.task_instances(run_id) if t["task_id"] == "wait_for_raw_drop")
        assert sensor["state"] == "failed" and sensor["try_number"] == 1
        reason = api.error_of(run_id, sensor)
        assert f"raw/{DATASET}/{version}/_SUCCESS" in reason and "never arrived" in reason, reason


def test_viewer_cannot_trigger_or_roll_back(login, stack, api, viewer_api, screenshots):
    # without a login the models pages answer nothing (a browser is sent to the login page)
    with pytest.raises(urllib.error.HTTPError) as anonymous:
        urllib.request.urlopen(f"{stack.url}/sparkvision/api/models", timeout=30)
    assert anonymous.value.code == 401

    with pytest.raises(ApiError) as refused:
        viewer_api.trigger({"version": "viewer1"}, "viewer__1")
    assert refused.value.status == 403
    with pytest.raises(ApiError) as refused:
        viewer_api.post("/sparkvision/models/fashion_cnn/rollback/1", None)
    assert refused.value.status == 403
    listing = viewer_api.get("/sparkvision/api/models")
    assert listing["models"] and listing["can_rollback"] is False

    page = login("viewer")
    page.goto(f"{stack.url}/sparkvision/models")
    page.get_by_text("Published models").wait_for()
    assert page.get_by_role("button", name="make LATEST").count() == 0
    response = page.request.post(f"{stack.url}/sparkvision/models/fashion_cnn/rollback/1")
    assert response.status == 403
    # the UI offers no way to trigger: no Trigger button, or one whose run is refused
    page.goto(f"{stack.url}/dags/image_training")
    page.get_by_text("image_training").first.wait_for()
    page.screenshot(path=screenshots / "07-viewer-dag.png")
    trigger = page.get_by_role("button", name="Trigger")
    if trigger.count() and trigger.first.is_enabled():
        trigger.first.click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_role("button", name="Run", exact=True).click()
        dialog.locator("#element_version").fill("viewer2")
        dialog.get_by_role("button", name="Trigger").click()
        dialog.get_by_text(re.compile(r"403|Forbidden", re.IGNORECASE)).first.wait_for()
        page.screenshot(path=screenshots / "08-viewer-trigger-refused.png")
    assert not {"viewer1", "viewer2"} & set(runs_by_conf_version(api))
