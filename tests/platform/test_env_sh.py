"""scripts/env.sh (sourced by every make target): defaults apply, settings already made are kept as they are."""

from __future__ import annotations

import json
import os
import subprocess

CONNECTIONS = ("AIRFLOW_CONN_SPARK_DEFAULT", "AIRFLOW_CONN_FS_DEFAULT", "AIRFLOW_CONN_WEBHDFS_DEFAULT")


def sourced(project_dir, names=CONNECTIONS, **preset: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in names} | preset
    script = ". scripts/env.sh && " + " && ".join(f'printf "%s\\0" "${name}"' for name in names)
    out = subprocess.run(["bash", "-c", script], cwd=project_dir, env=env, capture_output=True, check=True).stdout
    return dict(zip(names, out.decode().split("\0")[:-1], strict=True))


def test_defaults_are_valid_json_connections(project_dir):
    values = sourced(project_dir)
    assert json.loads(values["AIRFLOW_CONN_SPARK_DEFAULT"]) == {"conn_type": "spark", "host": "local[*]"}
    assert json.loads(values["AIRFLOW_CONN_FS_DEFAULT"])["extra"] == {"path": "/"}
    assert json.loads(values["AIRFLOW_CONN_WEBHDFS_DEFAULT"])["port"] == 9870


def test_connections_set_before_sourcing_are_kept_byte_for_byte(project_dir):
    preset = {
        "AIRFLOW_CONN_SPARK_DEFAULT": '{"conn_type": "spark", "host": "spark://127.0.0.1", "port": 7077}',
        "AIRFLOW_CONN_FS_DEFAULT": '{"conn_type": "fs", "extra": {"path": "/srv"}}',
        "AIRFLOW_CONN_WEBHDFS_DEFAULT": '{"conn_type": "webhdfs", "host": "nn", "port": 9871, "login": "me"}',
    }
    assert sourced(project_dir, **preset) == preset


def test_malloc_arenas_are_capped_unless_set(project_dir):
    """glibc's malloc arenas (8 per core by default) are capped for every process env.sh's callers start."""
    assert sourced(project_dir, ("MALLOC_ARENA_MAX",)) == {"MALLOC_ARENA_MAX": "2"}
    assert sourced(project_dir, ("MALLOC_ARENA_MAX",), MALLOC_ARENA_MAX="8") == {"MALLOC_ARENA_MAX": "8"}
