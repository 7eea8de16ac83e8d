"""The production-like stack itself: four components, a misspelt parameter refused by the run,
and a stop that leaves no process behind (run last: it stops the session's stack)."""

from __future__ import annotations

import socket

import pytest

from devtools.airflow_stack import COMPONENTS
from devtools.procs import alive, session_members
from tests.orchestration.helpers import wait_for_run

pytestmark = pytest.mark.integration


def test_every_component_is_its_own_process_and_healthy(stack):
    assert set(stack.running()) == {*COMPONENTS, "postgres"}
    assert len(set(stack.running().values())) == len(COMPONENTS) + 1
    health = stack.health()
    assert {name: health[name]["status"] for name in ("metadatabase", "scheduler", "triggerer", "dag_processor")} == {
        "metadatabase": "healthy",
        "scheduler": "healthy",
        "triggerer": "healthy",
        "dag_processor": "healthy",
    }
    assert stack.env()["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://airflow:")


def test_a_misspelt_parameter_is_refused_naming_the_closest_one(api):
    api.trigger({"version": "typo1", "epoch": 3}, "misspelt__1")
    finished = wait_for_run(api, "misspelt__1", timeout=180)
    assert finished["state"] == "failed"
    resolve = next(t for t in api.task_instances("misspelt__1") if t["task_id"] == "resolve")
    assert resolve["state"] == "failed" and resolve["try_number"] == 1  # refused, not retried
    reason = api.error_of("misspelt__1", resolve)
    assert "unknown parameter 'epoch' (did you mean 'epochs'?)" in reason, reason


def test_stack_stop_leaves_no_process_behind(stack):
    pids = dict(stack.running())
    ports = [stack.api_port, stack.pg_port]
    left = stack.stop()
    assert left == []
    assert session_members(pids.values()) == []
    assert not any(alive(pid) for pid in pids.values())
    for port in ports:
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still answers"
