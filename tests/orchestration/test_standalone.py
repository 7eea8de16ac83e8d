"""`make airflow-standalone` (the demo's SQLite Airflow) stops on Ctrl-C with nothing left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import psutil
import pytest

from devtools.procs import describe, free_port, session_members

pytestmark = pytest.mark.integration


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=5) as response:
            health = json.load(response)
    except OSError:
        return False
    return all(health[c]["status"] == "healthy" for c in ("scheduler", "triggerer", "dag_processor"))


def test_ctrl_c_stops_standalone_and_its_workers(tmp_path, project_dir):
    port = free_port()
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__CORE__PARALLELISM": "2",
        "SPARKVISION_ROOT": (tmp_path / "root").as_uri(),
    }
    # As `make airflow-standalone` runs in a terminal: the terminal's Ctrl-C is SIGINT to the group.
    wrapper = subprocess.Popen(
        [sys.executable, "-m", "devtools.standalone", "--grace", "15"],
        cwd=project_dir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    standalone = None
    try:
        deadline = time.monotonic() + 240
        while not healthy(port):
            assert wrapper.poll() is None, "standalone exited before it was healthy"
            assert time.monotonic() < deadline, "standalone not healthy after 240 s"
            time.sleep(2)
        standalone = psutil.Process(wrapper.pid).children()[0].pid
        running = session_members([standalone])
        # standalone, api-server, scheduler (+ its LocalExecutor workers), dag-processor, triggerer
        assert len(running) >= 6, describe(running)

        started = time.monotonic()
        os.killpg(wrapper.pid, signal.SIGINT)
        assert wrapper.wait(timeout=90) == 0
        print(f"stopped in {time.monotonic() - started:.1f} s")
        assert session_members([standalone, wrapper.pid]) == []
    finally:
        for pid in session_members([wrapper.pid, *([standalone] if standalone else [])]):
            os.kill(pid, signal.SIGKILL)
        wrapper.wait()
