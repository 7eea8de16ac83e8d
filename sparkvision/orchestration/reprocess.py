"""Re-process named dataset versions: one ``image_training`` run per version, through the REST API.

    python -m sparkvision.orchestration.reprocess --url http://127.0.0.1:8080 --user admin v1 v2
    python -m sparkvision.orchestration.reprocess ... -c '{"epochs": 3}' v3     # other parameters too

``make reprocess VERSIONS="v1 v2"`` runs it against the local production-like stack. The password
comes from ``AIRFLOW_PASSWORD`` or ``--password-file`` (SimpleAuthManager's generated JSON file).
Every run is triggered first (they then share the Spark pool in order), then each is followed to
its end; one line per version says how it ended: the published model version, or the failed
task and its error. The exit status is 0 only when every run succeeded.

Standard library only: it talks HTTP to Airflow's api-server and imports nothing of Airflow.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

DAG_ID = "image_training"
TERMINAL = {"success", "failed"}


class AirflowApi:
    """A small client of Airflow 3's REST API (``/api/v2``) with a JWT from ``/auth/token``."""

    def __init__(self, url: str, username: str, password: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        reply = self._call("POST", "/auth/token", {"username": username, "password": password}, token=None)
        self.token = reply["access_token"]

    def _call(self, method: str, path: str, body: Any = None, token: str | None = "") -> Any:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token or self.token}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.load(response)
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise ApiError(exc.code, f"{method} {path}: HTTP {exc.code}: {detail}") from None

    def get(self, path: str) -> Any:
        return self._call("GET", path)

    def post(self, path: str, body: Any) -> Any:
        return self._call("POST", path, body)

    def unpause(self) -> None:
        self._call("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False})

    def trigger(self, conf: dict[str, Any], run_id: str) -> dict[str, Any]:
        """Create a manual run of the DAG (no logical date: its version comes from ``conf``)."""
        body = {"dag_run_id": run_id, "logical_date": None, "conf": conf}
        return self.post(f"/api/v2/dags/{DAG_ID}/dagRuns", body)

    def run(self, run_id: str) -> dict[str, Any]:
        return self.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{_q(run_id)}")

    def task_instances(self, run_id: str) -> list[dict[str, Any]]:
        return self.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{_q(run_id)}/taskInstances")["task_instances"]

    def xcom(self, run_id: str, task_id: str) -> Any:
        path = f"/api/v2/dags/{DAG_ID}/dagRuns/{_q(run_id)}/taskInstances/{task_id}/xcomEntries/return_value"
        return self.get(path + "?deserialize=true")["value"]

    def error_of(self, run_id: str, task: dict[str, Any]) -> str:
        """The last error line of a task instance's log (what made it fail)."""
        path = f"/api/v2/dags/{DAG_ID}/dagRuns/{_q(run_id)}/taskInstances/{task['task_id']}/logs/{task['try_number']}"
        try:
            content = self.get(path).get("content", [])
        except ApiError as exc:
            return f"(no log: {exc})"
        return last_error(content)


class ApiError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def last_error(content: list[Any]) -> str:
    """The error that failed a task, from its structured log: the raised exception's type and message."""
    found = ""
    for entry in content:
        if not isinstance(entry, dict):
            continue
        details = [d for d in entry.get("error_detail") or [] if isinstance(d, dict) and d.get("exc_value")]
        raised = [d for d in details if not d.get("is_cause")] or details  # not the exception it chained
        if raised:
            found = f"{raised[0].get('exc_type', 'Error')}: {raised[0]['exc_value']}"
        elif not found and str(entry.get("level", "")).lower() in {"error", "critical"}:
            found = str(entry.get("event", ""))
    return found or "(no error in the log)"


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (_when(end) - _when(start)).total_seconds()


def _when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


@dataclass
class Outcome:
    version: str
    run_id: str
    state: str
    detail: str

    def line(self) -> str:
        return f"{self.version:<16} {self.state:<8} {self.run_id}  {self.detail}"


def reprocess(
    api: AirflowApi, versions: list[str], conf: dict[str, Any], timeout: float, poll: float = 5.0, echo=print
) -> list[Outcome]:
    """Trigger one run per version, then wait for each; return how each ended."""
    if api.get(f"/api/v2/dags/{DAG_ID}")["is_paused"]:
        raise ApiError(409, f"{DAG_ID} is paused: its runs would wait forever; unpause it first (or pass --unpause)")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    runs = {}
    for version in versions:
        run_id = f"reprocess__{version}__{stamp}"
        api.trigger({**conf, "version": version}, run_id)
        echo(f"triggered {run_id}")
        runs[version] = run_id
    deadline = time.monotonic() + timeout
    outcomes = []
    for version, run_id in runs.items():
        state = api.run(run_id)["state"]
        while state not in TERMINAL and time.monotonic() < deadline:
            time.sleep(poll)
            state = api.run(run_id)["state"]
        run = api.run(run_id)
        took = _seconds(run.get("start_date"), run.get("end_date"))
        detail = describe(api, run_id, state) + (f" ({took:.0f} s)" if took is not None else "")
        outcome = Outcome(version, run_id, state, detail)
        echo(outcome.line())
        outcomes.append(outcome)
    return outcomes


def describe(api: AirflowApi, run_id: str, state: str) -> str:
    """What a finished run gave: the model version it published, or why it failed."""
    tasks = {task["task_id"]: task for task in api.task_instances(run_id)}
    if state == "success":
        announce = tasks.get("announce", {})
        if announce.get("state") == "success":
            published = api.xcom(run_id, "announce")
            return f"published {published['model']} version {published['version']}"
        return "no new model version (see check_blessed and announce)"
    if state not in TERMINAL:
        running = sorted(task_id for task_id, task in tasks.items() if task.get("state") not in {"success", "skipped"})
        return f"still {state} after the timeout (unfinished: {', '.join(running)})"
    failed = [task for task in tasks.values() if task.get("state") == "failed"]
    return "; ".join(f"{task['task_id']} failed: {api.error_of(run_id, task)}" for task in failed) or "failed"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("versions", nargs="+", help="dataset versions to (re-)process, e.g. v1 v2")
    parser.add_argument("--url", default=os.environ.get("AIRFLOW_URL", "http://127.0.0.1:8080"))
    parser.add_argument("--user", default=os.environ.get("AIRFLOW_USER", "admin"))
    parser.add_argument("--password-file", help="a JSON file {user: password} (SimpleAuthManager's generated one)")
    parser.add_argument("-c", "--conf", default="{}", help="other run parameters, as JSON")
    parser.add_argument("--timeout", type=float, default=6 * 3600, help="seconds to wait for all runs")
    parser.add_argument("--poll", type=float, default=5.0, help="seconds between looks at a run's state")
    parser.add_argument("--unpause", action="store_true", help="unpause the DAG first (its schedule starts too)")
    args = parser.parse_args(argv)
    password = os.environ.get("AIRFLOW_PASSWORD")
    if args.password_file:
        with open(args.password_file) as handle:
            password = json.load(handle)[args.user]
    if not password:
        parser.error("no password: set AIRFLOW_PASSWORD or pass --password-file")
    try:
        outcomes = reprocess(
            AirflowApi(args.url, args.user, password), args.versions, json.loads(args.conf), args.timeout
        )
    except ApiError as exc:
        print(f"reprocess: {exc}", file=sys.stderr)
        return 2
    except urllib.error.URLError as exc:
        print(f"reprocess: cannot reach Airflow at {args.url}: {exc.reason} (is it running?)", file=sys.stderr)
        return 2
    return 0 if all(outcome.state == "success" for outcome in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
