"""One production-like Airflow per test session (PostgreSQL + LocalExecutor, four components), a
browser, and helpers to follow runs through the REST API.

The stack runs from the project's own files (``devtools.airflow_stack``, what ``make
airflow-start`` runs) in a temporary folder, on free loopback ports, with short sensor intervals,
a drop timeout of ``DROP_TIMEOUT`` seconds and only two executor slots: two runs waiting for
their drops would take both slots if waiting held one. Tests that stop it run last.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from devtools.airflow_stack import AirflowStack
from devtools.procs import free_port
from sparkvision.orchestration.reprocess import AirflowApi
from tests.orchestration.helpers import DROP_TIMEOUT, FAST

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: The tests on the session's stack, in the order the scenario needs: the runs waiting for drops
#: that never come are checked once other runs had the time to finish beside them, and the stop
#: comes last. Tests that need no stack run first.
SCENARIO = (
    "test_every_component_is_its_own_process_and_healthy",
    "test_browser_refuses_a_hostile_version_and_a_valid_trigger_runs_to_success",
    "test_viewer_cannot_trigger_or_roll_back",
    "test_a_misspelt_parameter_is_refused_naming_the_closest_one",
    "test_backfill_processes_each_dates_drop_as_its_own_version_in_order",
    "test_named_versions_are_reprocessed_through_the_rest_api",
    "test_admin_rolls_latest_back",
    "test_a_run_waiting_for_a_missing_drop_times_out_with_its_reason",
    "test_stack_stop_leaves_no_process_behind",
)


def pytest_collection_modifyitems(items):
    order = {name: index for index, name in enumerate(SCENARIO)}
    items.sort(key=lambda item: order.get(item.originalname, -1) if item.path.parent == Path(__file__).parent else -1)


@pytest.fixture(scope="session")
def stack_root(tmp_path_factory) -> str:
    return (tmp_path_factory.mktemp("stack-root") / "root").as_uri()


@pytest.fixture(scope="session")
def stack(stack_root) -> AirflowStack:
    started = time.monotonic()
    # Not under pytest's private (0700) temporary folder: as root, PostgreSQL runs as its own user.
    base = tempfile.mkdtemp(prefix="sparkvision-stack-")
    os.chmod(base, 0o755)
    airflow = AirflowStack(
        base,
        api_port=free_port(),
        extra_env={
            "SPARKVISION_ROOT": stack_root,
            "SPARKVISION_SENSOR_POKE_SECONDS": "2",
            "SPARKVISION_SENSOR_TIMEOUT_SECONDS": "300",
            "SPARKVISION_DROP_TIMEOUT_SECONDS": str(DROP_TIMEOUT),
            "AIRFLOW__CORE__PARALLELISM": "2",
            "AIRFLOW__SCHEDULER__TRIGGER_TIMEOUT_CHECK_INTERVAL": "3",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        },
    )
    airflow.start()
    print(f"stack healthy after {time.monotonic() - started:.1f} s")
    yield airflow
    airflow.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def api(stack) -> AirflowApi:
    """The admin's REST client; the DAG parsed and unpaused (as the trigger form's default does)."""
    client = AirflowApi(stack.url, "admin", stack.password("admin"))
    deadline = time.monotonic() + 120
    while True:
        try:
            client.get("/api/v2/dags/image_training")
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
    client.unpause()
    return client


@pytest.fixture(scope="session")
def viewer_api(stack, api) -> AirflowApi:
    return AirflowApi(stack.url, "viewer", stack.password("viewer"))


@pytest.fixture(scope="session")
def waiting_runs(api) -> dict[str, str]:
    """Runs of two versions whose drops never arrive: they wait (deferred), then time out."""
    runs = {}
    for version in ("never1", "never2"):
        run_id = f"waiting__{version}"
        api.trigger({"version": version, **FAST}, run_id)
        runs[version] = run_id
    return runs


@pytest.fixture(scope="session")
def output_dir(project_dir) -> Path:
    """Where the browser tests leave their screenshots (git-ignored)."""
    folder = Path(os.environ.get("SPARKVISION_TEST_OUTPUT", project_dir / "data" / "test-output"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium driven by Playwright from PyPI."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def login(browser, stack):
    """``login(user)``: a fresh browser page signed in through Airflow's login form."""
    contexts = []

    def sign_in(user: str):
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.goto(f"{stack.url}/")
        page.get_by_label("Username").fill(user)
        page.get_by_label("Password").fill(stack.password(user))
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{stack.url}/")
        return page

    yield sign_in
    for context in contexts:
        context.close()
