"""The production-like Airflow: PostgreSQL + LocalExecutor, every component its own process.

PostgreSQL 15 (the Debian package) keeps its data in a folder of the checkout (git-ignored) and
listens on a loopback port; Airflow's api-server, scheduler, dag-processor and triggerer run as
separate processes, each leading a session of its own, and are stopped by PID with every
process of their sessions (LocalExecutor workers, task processes, spark-submit JVMs)::

    python -m devtools.airflow_stack start     # `make airflow-start`: waits until healthy
    python -m devtools.airflow_stack status
    python -m devtools.airflow_stack airflow backfill create --dag-id image_training ...
    python -m devtools.airflow_stack reprocess v1 v2    # one run per named version, via the REST API
    python -m devtools.airflow_stack stop      # `make airflow-stop`: nothing left running

Nothing secret is committed or defaulted: the first start generates the database password,
the JWT secret, the API secret key and the Fernet key into ``<dir>/secrets.env`` (mode 0600),
and SimpleAuthManager generates the passwords of the ``admin`` and the read-only ``viewer``
user into ``<dir>/home/simple_auth_manager_passwords.json.generated``.

Layout of ``<dir>`` (default ``.airflow-stack/``)::

    secrets.env   postgres/   home/ (AIRFLOW_HOME: logs, passwords)   logs/<component>.log   stack.json
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from devtools.procs import alive, describe, free_port, session_members, stop_session
from sparkvision.platform import settings

log = logging.getLogger(__name__)

DEFAULT_DIR = settings.PROJECT_DIR / ".airflow-stack"
PG_BIN = Path(os.environ.get("SPARKVISION_PG_BIN", "/usr/lib/postgresql/15/bin"))
#: Who runs PostgreSQL when this runs as root (initdb and postgres refuse root).
PG_OS_USER = os.environ.get("SPARKVISION_PG_OS_USER", "postgres")
DB_USER = DB_NAME = "airflow"
#: The UI's users and their SimpleAuthManager roles: an admin and a read-only viewer.
USERS = {"admin": "admin", "viewer": "viewer"}
#: Components in start order (stopped in reverse).
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
SECRET_NAMES = (
    "POSTGRES_PASSWORD",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__API__SECRET_KEY",
    "AIRFLOW__CORE__FERNET_KEY",
)
STATE_FILE = "stack.json"
PASS_THROUGH = ("airflow", "reprocess")
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"


def generate_secrets(path: Path) -> dict[str, str]:
    """Read ``path`` (KEY=VALUE lines), adding any missing secret with a fresh random value."""
    values = read_env_file(path) if path.exists() else {}
    fresh = {
        "POSTGRES_PASSWORD": secrets.token_urlsafe(24),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(48),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
    }
    missing = {name: fresh[name] for name in SECRET_NAMES if not values.get(name)}
    if missing:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as handle:
            if not values:
                handle.write("# Generated at first start; git-ignored. Delete it (and the stack) to start afresh.\n")
            handle.writelines(f"{name}={value}\n" for name, value in missing.items())
        os.chmod(path, 0o600)
        values.update(missing)
    return values


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values


@dataclass
class AirflowStack:
    """One production-like Airflow whose state lives under ``base_dir``."""

    base_dir: str = str(DEFAULT_DIR)
    api_port: int = 8080
    pg_port: int = 0
    scheduler_health_port: int = 0
    worker_log_port: int = 0
    trigger_log_port: int = 0
    #: Extra AIRFLOW__* / SPARKVISION_* settings for the components (tests: short intervals).
    extra_env: dict[str, str] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    started_at: float = 0.0

    # -- places ------------------------------------------------------------------------------
    @property
    def base(self) -> Path:
        return Path(self.base_dir).resolve()

    @property
    def home(self) -> Path:
        return self.base / "home"

    @property
    def pg_data(self) -> Path:
        return self.base / "postgres"

    @property
    def secrets_file(self) -> Path:
        return self.base / "secrets.env"

    @property
    def passwords_file(self) -> Path:
        return self.home / PASSWORDS_FILE

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def log_file(self, component: str) -> Path:
        return self.base / "logs" / f"{component}.log"

    # -- environment -------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        """The environment every component (and the `airflow` CLI against this stack) runs with."""
        found = generate_secrets(self.secrets_file)
        password = found["POSTGRES_PASSWORD"]
        env = {
            **os.environ,
            **{name: found[name] for name in SECRET_NAMES if name.startswith("AIRFLOW__")},
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": (
                f"postgresql+psycopg2://{DB_USER}:{password}@127.0.0.1:{self.pg_port}/{DB_NAME}"
            ),
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, r in USERS.items()),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.passwords_file),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(self.scheduler_health_port),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.worker_log_port),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.trigger_log_port),
            **self.extra_env,
        }
        env.pop("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD", None)
        return env

    def airflow(self, *args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        """Run the ``airflow`` CLI against this stack."""
        return subprocess.run([sys.executable, "-m", "airflow", *args], env=self.env(), check=check, **kwargs)

    # -- PostgreSQL --------------------------------------------------------------------------
    def _as_pg_user(self, command: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return command
        return ["setpriv", f"--reuid={PG_OS_USER}", f"--regid={PG_OS_USER}", "--init-groups", "--", *command]

    def _init_postgres(self, password: str) -> None:
        if (self.pg_data / "PG_VERSION").exists():
            return
        log.info("initialising PostgreSQL in %s", self.pg_data)
        self.pg_data.mkdir(parents=True, exist_ok=True)
        pwfile = self.base / ".pwfile"
        pwfile.write_text(password + "\n")
        try:
            if os.geteuid() == 0:
                shutil.chown(self.pg_data, PG_OS_USER, PG_OS_USER)
                shutil.chown(pwfile, PG_OS_USER, PG_OS_USER)
            os.chmod(pwfile, 0o600)
            os.chmod(self.pg_data, 0o700)
            command = [str(PG_BIN / "initdb"), "-D", str(self.pg_data), "-U", DB_USER, f"--pwfile={pwfile}"]
            command += ["--auth=scram-sha-256", "-E", "UTF8", "--no-locale"]
            with open(self.log_file("initdb"), "w") as out:
                subprocess.run(self._as_pg_user(command), stdout=out, stderr=subprocess.STDOUT, check=True)
        finally:
            pwfile.unlink(missing_ok=True)

    def _start_postgres(self, password: str, timeout: float = 60.0) -> None:
        import psycopg2

        command = [str(PG_BIN / "postgres"), "-D", str(self.pg_data), "-p", str(self.pg_port)]
        command += ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=", "-c", "max_connections=200"]
        self.pids["postgres"] = _spawn(self._as_pg_user(command), self.log_file("postgres"))
        deadline = time.monotonic() + timeout
        while True:
            try:
                conn = psycopg2.connect(
                    host="127.0.0.1", port=self.pg_port, user=DB_USER, password=password, dbname="postgres"
                )
                break
            except psycopg2.OperationalError as exc:
                if not alive(self.pids["postgres"]) or time.monotonic() > deadline:
                    raise RuntimeError(f"PostgreSQL did not start: {exc}; see {self.log_file('postgres')}") from exc
                time.sleep(0.3)
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,))
            if cursor.fetchone() is None:
                cursor.execute(f"CREATE DATABASE {DB_NAME}")
        conn.close()

    # -- lifecycle ---------------------------------------------------------------------------
    def running(self) -> dict[str, int]:
        """The recorded components that are alive."""
        return {name: pid for name, pid in self.pids.items() if alive(pid)}

    def start(self, timeout: float = 300.0) -> AirflowStack:
        """Start PostgreSQL and the four Airflow components; return once every one is healthy."""
        if self.running():
            raise RuntimeError(f"the stack in {self.base} is already (partly) running: {self.running()}; stop it first")
        self.base.mkdir(parents=True, exist_ok=True)
        (self.base / "logs").mkdir(exist_ok=True)
        self.home.mkdir(exist_ok=True)
        for name in ("pg_port", "scheduler_health_port", "worker_log_port", "trigger_log_port"):
            setattr(self, name, free_port())
        password = generate_secrets(self.secrets_file)["POSTGRES_PASSWORD"]
        self.pids = {}
        self.started_at = time.time()
        try:
            self._init_postgres(password)
            self._start_postgres(password)
            self._save()
            with open(self.log_file("migrate"), "w") as out:
                self.airflow("db", "migrate", stdout=out, stderr=subprocess.STDOUT)
            pool, slots = settings.spark_pool(), str(settings.spark_pool_slots())
            self.airflow("pools", "set", pool, slots, "Spark jobs of sparkvision: what the cores allow at once",
                         stdout=subprocess.DEVNULL)  # fmt: skip
            for component in COMPONENTS:
                args = ["api-server", "--host", "127.0.0.1", "--port", str(self.api_port)]
                args = args if component == "api-server" else [component]
                command = [sys.executable, "-m", "airflow", *args]
                self.pids[component] = _spawn(command, self.log_file(component), self.env())
                self._save()
            self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        log.info("Airflow up at %s (PostgreSQL on 127.0.0.1:%d)", self.url, self.pg_port)
        return self

    def health(self) -> dict | None:
        try:
            with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=5) as response:
                return json.load(response)
        except (OSError, ValueError):
            return None

    def wait_healthy(self, timeout: float = 300.0) -> dict:
        """Block until the health endpoint calls every component healthy, with heartbeats from this start."""
        deadline = time.monotonic() + timeout
        health = None
        while time.monotonic() < deadline:
            dead = [name for name, pid in self.pids.items() if not alive(pid)]
            if dead:
                raise RuntimeError(f"{', '.join(dead)} exited; see {', '.join(map(str, map(self.log_file, dead)))}")
            health = self.health()
            if health and _all_healthy(health, self.started_at):
                return health
            time.sleep(1)
        raise TimeoutError(f"Airflow at {self.url} not healthy after {timeout:.0f}s: {health}")

    def stop(self, grace: float = 30.0) -> list[str]:
        """Stop every component by PID (Airflow first, PostgreSQL last); return what is left (nothing)."""
        if not self.pids:
            return []
        for name in [*reversed(COMPONENTS), "postgres"]:
            pid = self.pids.get(name)
            if pid is None:
                continue
            # SIGINT is PostgreSQL's fast shutdown; Airflow's components end on SIGTERM.
            stop_session(pid, first=signal.SIGINT if name == "postgres" else signal.SIGTERM, grace=grace)
            log.info("stopped %s (pid %d)", name, pid)
        left = session_members(self.pids.values())
        self.pids = {}
        self._save()
        return describe(left)

    def password(self, user: str) -> str:
        return json.loads(self.passwords_file.read_text())[user]

    def _save(self) -> None:
        (self.base / STATE_FILE).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, base_dir: str | Path = DEFAULT_DIR) -> AirflowStack:
        """The stack recorded in ``base_dir`` (a fresh description when nothing is recorded)."""
        state = Path(base_dir) / STATE_FILE
        if not state.exists():
            return cls(str(base_dir))
        return cls(**json.loads(state.read_text()))


def _all_healthy(health: dict, since: float) -> bool:
    for component in ("scheduler", "triggerer", "dag_processor"):
        info = health.get(component) or {}
        beat = info.get(f"latest_{component}_heartbeat")
        if info.get("status") != "healthy" or not beat:
            return False
        if datetime.fromisoformat(beat).timestamp() < since:  # a job of an earlier start
            return False
    return health.get("metadatabase", {}).get("status") == "healthy"


def _spawn(command: list[str], log_path: Path, env: dict[str, str] | None = None) -> int:
    """Start ``command`` in a session of its own, output appended to ``log_path``; return its PID."""
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True
        )
    return proc.pid


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", default=os.environ.get("SPARKVISION_STACK_DIR", str(DEFAULT_DIR)))
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="start it and wait until every component is healthy")
    start.add_argument("--port", type=int, default=int(os.environ.get("SPARKVISION_STACK_PORT", "8080")))
    sub.add_parser("stop", help="stop every process of the stack")
    sub.add_parser("status", help="the components' PIDs and the health endpoint's answer")
    sub.add_parser("env", help="print the stack's settings as shell exports (secrets included)")
    gen = sub.add_parser("secrets", help="add any missing secret to an env file (docker-compose.yaml's .env)")
    gen.add_argument("file", type=Path)
    sub.add_parser("airflow", help="run the airflow CLI against the stack (the rest of the line is its)")
    sub.add_parser("reprocess", help="sparkvision.orchestration.reprocess as admin against the stack")
    # What follows a pass-through command goes to it untouched (options included).
    argv = sys.argv[1:] if argv is None else list(argv)
    cut = next((i + 1 for i, word in enumerate(argv) if word in PASS_THROUGH), len(argv))
    args = parser.parse_args(argv[:cut])
    args.args = argv[cut:]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.command == "secrets":
        added = set(SECRET_NAMES) - (set(read_env_file(args.file)) if args.file.exists() else set())
        generate_secrets(args.file)
        print(f"{args.file}: " + (f"added {', '.join(sorted(added))}" if added else "every secret already set"))
        return 0
    stack = AirflowStack.load(args.dir)
    if args.command == "start":
        if stack.running():
            stack.wait_healthy()
        else:
            stack.api_port = args.port
            stack.start()
        print(f"Airflow is up: {stack.url}  (users: {', '.join(USERS)}; passwords in {stack.passwords_file})")
        return 0
    if args.command == "stop":
        left = stack.stop()
        print("stack stopped" if not left else "still running:\n" + "\n".join(left))
        return 1 if left else 0
    if args.command == "status":
        running = stack.running()
        print(", ".join(f"{name} pid {pid}" for name, pid in running.items()) or "not running")
        if running:
            print(json.dumps(stack.health(), indent=2))
        return 0 if len(running) == len(COMPONENTS) + 1 else 1
    env = stack.env()
    if args.command == "env":
        for key, value in sorted(env.items()):
            if key.startswith(("AIRFLOW", "SPARKVISION")):
                print(f"export {key}={_shell_quote(value)}")
        return 0
    if args.command == "reprocess":
        command = [sys.executable, "-m", "sparkvision.orchestration.reprocess", "--url", stack.url]
        command += ["--user", "admin", "--password-file", str(stack.passwords_file), *args.args]
        return subprocess.run(command).returncode
    return subprocess.run([sys.executable, "-m", "airflow", *args.args], env=env).returncode


def _shell_quote(value: str) -> str:
    return "'" + value.replace("'", "'\"'\"'") + "'"


if __name__ == "__main__":
    sys.exit(main())
