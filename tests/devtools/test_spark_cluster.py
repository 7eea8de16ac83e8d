"""`python -m devtools.spark_cluster` (behind make spark-start/-status/-stop) end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from devtools.daemons import alive
from devtools.spark_cluster import SparkCluster

pytestmark = pytest.mark.integration


def test_spark_command_starts_a_clean_cluster_reports_and_stops_it_by_pid(tmp_path):
    command = [sys.executable, "-m", "devtools.spark_cluster"]
    folder = str(tmp_path / "spark")
    started = subprocess.run(
        [*command, "start", "--dir", folder, "--free-ports", "--workers", "1"], capture_output=True, text=True
    )
    try:
        assert started.returncode == 0, started.stderr[-3000:]
        cluster = SparkCluster.load(folder)
        assert f"export AIRFLOW_CONN_SPARK_DEFAULT='{cluster.airflow_connection}'" in started.stdout
        pids = cluster.pids()
        assert set(pids) == {"master", "worker-0"} and cluster.alive_workers() == 1
        assert cluster.state()["workers"][0]["cores"] == 1
        # The workers (and so their executors) carry nothing of this checkout on their path.
        environ = Path(f"/proc/{pids['worker-0']}/environ").read_bytes().split(b"\0")
        assert not any(entry.startswith(b"PYTHONPATH=") for entry in environ)
        assert subprocess.run([*command, "status", "--dir", folder]).returncode == 0
    finally:
        stopped = subprocess.run([*command, "stop", "--dir", folder], capture_output=True)
    assert stopped.returncode == 0
    assert not any(alive(pid) for pid in pids.values())
    assert subprocess.run([*command, "status", "--dir", folder], capture_output=True).returncode == 1
