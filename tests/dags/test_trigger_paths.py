"""Hostile names through the REST API that the web UI and scripts use to trigger runs.

The api-server's own FastAPI app (in-process, on a fresh SQLite database holding the parsed DAG)
answers ``POST /api/v2/dags/image_training/dagRuns``: a name the form's pattern refuses must be
refused there too, with no run created. (``airflow dags test -c`` is covered in
test_image_training_dag.py; the browser form in the operations tests.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.integration

CLIENT = textwrap.dedent(
    """
    import json, sys
    from fastapi.testclient import TestClient
    from airflow.api_fastapi.app import create_app

    client = TestClient(create_app())
    answers = []
    for conf in json.loads(sys.argv[1]):
        reply = client.post("/api/v2/dags/image_training/dagRuns", json={"logical_date": None, "conf": conf})
        answers.append({"status": reply.status_code, "detail": reply.text[:400]})
    runs = client.get("/api/v2/dags/image_training/dagRuns").json()
    print(json.dumps({"answers": answers, "runs": [run["conf"] for run in runs["dag_runs"]]}))
    """
)


def test_rest_api_refuses_hostile_names_and_creates_no_run(tmp_path, project_dir):
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(project_dir / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",  # the login is the operations tests' subject
        "SPARKVISION_ROOT": (tmp_path / "root").as_uri(),
    }
    for command in (["db", "migrate"], ["dags", "reserialize"]):
        subprocess.run([sys.executable, "-m", "airflow", *command], env=env, check=True, capture_output=True)
    hostile = [{"version": "v1\n"}, {"version": "../x"}, {"version": "a/b"}, {"dataset": "x\n"}, {"model": ""}]
    out = subprocess.run(
        [sys.executable, "-c", CLIENT, json.dumps([*hostile, {"version": "v9"}])],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    statuses = [answer["status"] for answer in result["answers"]]
    assert statuses == [400] * len(hostile) + [200], result["answers"]
    assert all("Invalid input for param" in answer["detail"] for answer in result["answers"][:-1])
    assert result["runs"] == [{"version": "v9"}]  # only the valid trigger made a run
    assert not (tmp_path / "root").exists()
