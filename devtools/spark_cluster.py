"""A real Spark standalone cluster on loopback, from the pyspark wheel's own classes.

A master (``spark-class org.apache.spark.deploy.master.Master``) and workers
(``spark-class org.apache.spark.deploy.worker.Worker``), each a JVM in a process group of its
own with its own cores, memory and work folder, stopped by PID (a worker's process group takes
its executors with it). ``make spark-start`` / ``make spark-stop`` and the pytest session
fixture use this same code; the fixture picks free ports and a temporary folder::

    python -m devtools.spark_cluster start --dir .cache/spark   # master on 7077 (web UI 8090), 2 workers x 1 core
    python -m devtools.spark_cluster start --workers 3 --cores 2 --memory 3g
    python -m devtools.spark_cluster status --dir .cache/spark
    python -m devtools.spark_cluster stop --dir .cache/spark

The daemons get a clean environment: no ``PYTHONPATH``, so executors see none of this checkout.
The code reaches them with each job (``sparkvision.platform.spark.ship_package``, what
``--py-files`` does), as on a cluster of other machines.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from devtools.daemons import alive, free_port
from sparkvision.platform.settings import PROJECT_DIR

log = logging.getLogger(__name__)

STATE_FILE = "cluster.json"
MASTER = "org.apache.spark.deploy.master.Master"
WORKER = "org.apache.spark.deploy.worker.Worker"
EXECUTOR = "org.apache.spark.executor.CoarseGrainedExecutorBackend"
#: What the daemons inherit from this process; everything else (PYTHONPATH first) stays out.
PASSED_ENV = ("PATH", "HOME", "USER", "LANG", "JAVA_HOME", "TMPDIR", "TF_CPP_MIN_LOG_LEVEL")


def spark_home() -> Path:
    """The installed pyspark package: its bin/spark-class and jars/ are a Spark distribution."""
    import pyspark

    return Path(pyspark.__file__).parent


@dataclass
class SparkCluster:
    """A started (or startable) standalone cluster whose state lives under ``base_dir``."""

    base_dir: str
    master_port: int = 7077
    web_port: int = 8090  # Spark's own default, 8080, is Airflow's
    workers: int = 2
    cores: int = 1
    memory: str = "2g"
    host: str = "127.0.0.1"

    @property
    def master_url(self) -> str:
        return f"spark://{self.host}:{self.master_port}"

    @property
    def airflow_connection(self) -> str:
        """The ``AIRFLOW_CONN_SPARK_DEFAULT`` value that submits the jobs to this cluster."""
        return json.dumps({"conn_type": "spark", "host": f"spark://{self.host}", "port": self.master_port})

    @property
    def daemons(self) -> dict[str, str]:
        return {"master": MASTER, **{f"worker-{i}": WORKER for i in range(self.workers)}}

    @property
    def _base(self) -> Path:
        return Path(self.base_dir)

    def _pid_file(self, daemon: str) -> Path:
        return self._base / f"{daemon}.pid"

    def _log_file(self, daemon: str) -> Path:
        return self._base / "logs" / f"{daemon}.log"

    def _command(self, daemon: str) -> list[str]:
        command = [str(spark_home() / "bin" / "spark-class"), self.daemons[daemon]]
        if daemon == "master":
            return [*command, "--host", self.host, "--port", str(self.master_port), "--webui-port", str(self.web_port)]
        work = self._base / "work" / daemon
        work.mkdir(parents=True, exist_ok=True)
        return [
            *command,
            self.master_url,
            "--host",
            self.host,
            "--port",
            "0",
            "--webui-port",
            "0",
            "--cores",
            str(self.cores),
            "--memory",
            self.memory,
            "--work-dir",
            str(work.resolve()),
        ]

    def _env(self, daemon: str) -> dict[str, str]:
        env = {key: os.environ[key] for key in PASSED_ENV if key in os.environ}
        local = self._base / "local" / daemon
        local.mkdir(parents=True, exist_ok=True)
        return {
            **env,
            "SPARK_HOME": str(spark_home()),
            "SPARK_LOCAL_IP": self.host,
            "SPARK_LOCAL_DIRS": str(local.resolve()),
            "SPARK_LOG_DIR": str((self._base / "logs").resolve()),
            "SPARK_DAEMON_MEMORY": "512m",
            "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", sys.executable),
        }

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, timeout: float = 90.0) -> SparkCluster:
        """Start the master, then the workers; return once every worker is registered (ALIVE)."""
        if self.running():
            log.info("Spark cluster already running at %s", self.master_url)
            self.wait_ready(timeout)
            return self
        (self._base / "logs").mkdir(parents=True, exist_ok=True)
        (self._base / STATE_FILE).write_text(json.dumps(asdict(self), indent=2))
        for daemon in self.daemons:
            self.start_daemon(daemon)
            if daemon == "master":
                self.wait_ready(timeout, workers=0)
        try:
            self.wait_ready(timeout)
        except Exception:
            self.stop()
            raise
        log.info(
            "Spark cluster up: %s, %d workers x %d core(s), %s", self.master_url, self.workers, self.cores, self.memory
        )
        return self

    def start_daemon(self, daemon: str) -> int:
        with open(self._log_file(daemon), "ab") as out:
            proc = subprocess.Popen(
                self._command(daemon),
                env=self._env(daemon),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._pid_file(daemon).write_text(str(proc.pid))
        return proc.pid

    def state(self) -> dict:
        """The master's view (its web UI's JSON): workers, applications, cores."""
        with urllib.request.urlopen(f"http://{self.host}:{self.web_port}/json/", timeout=5) as response:
            return json.load(response)

    def alive_workers(self) -> int:
        return sum(1 for worker in self.state().get("workers", []) if worker.get("state") == "ALIVE")

    def wait_ready(self, timeout: float = 90.0, workers: int | None = None) -> None:
        """Block until the master answers and ``workers`` (default: all) are ALIVE, or raise."""
        wanted = self.workers if workers is None else workers
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            for daemon in self.daemons:
                pid_file = self._pid_file(daemon)
                if pid_file.exists() and not alive(int(pid_file.read_text())):
                    raise RuntimeError(f"Spark {daemon} exited; see {self._log_file(daemon)}")
            try:
                if self.alive_workers() >= wanted:
                    return
            except (OSError, urllib.error.URLError, ValueError) as exc:
                last_error = exc
            time.sleep(0.5)
        raise TimeoutError(f"Spark master {self.master_url} not ready with {wanted} workers: {last_error}")

    def pids(self) -> dict[str, int]:
        found = {}
        for daemon in self.daemons:
            pid_file = self._pid_file(daemon)
            if pid_file.exists() and alive(pid := int(pid_file.read_text())):
                found[daemon] = pid
        return found

    def running(self) -> bool:
        return len(self.pids()) == len(self.daemons)

    def executor_pids(self) -> list[int]:
        """The executor JVMs the workers run now (children in the workers' process groups)."""
        groups = set(self.pids().values()) - {self.pids().get("master")}
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
                pgid = os.getpgid(int(entry.name))
            except (OSError, ProcessLookupError):
                continue
            if pgid in groups and EXECUTOR.encode() in cmdline:
                found.append(int(entry.name))
        return sorted(found)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the workers (with their executors), then the master: SIGTERM to each process
        group, SIGKILL after ``timeout`` seconds."""
        for daemon in reversed(list(self.daemons)):
            pid_file = self._pid_file(daemon)
            if not pid_file.exists():
                continue
            pid = int(pid_file.read_text())
            if alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGTERM)
                deadline = time.monotonic() + timeout
                while alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.2)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)  # the group: executors a worker left behind too
            pid_file.unlink()
            log.info("stopped Spark %s (pid %d)", daemon, pid)

    @classmethod
    def load(cls, base_dir: str) -> SparkCluster:
        recorded = json.loads((Path(base_dir) / STATE_FILE).read_text())
        return cls(**{key: value for key, value in recorded.items() if key in cls.__dataclass_fields__})


def with_free_ports(base_dir: str, workers: int = 2, cores: int = 1, memory: str = "2g") -> SparkCluster:
    """A cluster description on free loopback ports (tests, benchmarks)."""
    return SparkCluster(
        base_dir, master_port=free_port(), web_port=free_port(), workers=workers, cores=cores, memory=memory
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["start", "stop", "status"])
    parser.add_argument("--dir", default=str(PROJECT_DIR / ".cache" / "spark"), help="state, logs, work folders")
    parser.add_argument("--port", type=int, default=7077, help="the master's port")
    parser.add_argument("--web-port", type=int, default=8090, help="the master's web UI")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cores", type=int, default=1, help="cores of each worker")
    parser.add_argument("--memory", default="2g", help="memory of each worker")
    parser.add_argument("--free-ports", action="store_true", help="pick free loopback ports")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    state = Path(args.dir) / STATE_FILE
    if args.command == "start":
        cluster = SparkCluster.load(args.dir) if state.exists() else None
        if cluster is None or not cluster.running():
            cluster = (
                with_free_ports(args.dir, args.workers, args.cores, args.memory)
                if args.free_ports
                else SparkCluster(args.dir, args.port, args.web_port, args.workers, args.cores, args.memory)
            )
        cluster.start()
        print(
            f"Spark cluster running: {cluster.master_url} (web UI http://{cluster.host}:{cluster.web_port}), "
            f"{cluster.workers} workers x {cluster.cores} core(s), {cluster.memory} each"
        )
        print(f"export AIRFLOW_CONN_SPARK_DEFAULT='{cluster.airflow_connection}'")
        return 0
    if not state.exists():
        print(f"no Spark cluster recorded in {args.dir}")
        return 0 if args.command == "stop" else 1
    cluster = SparkCluster.load(args.dir)
    if args.command == "stop":
        cluster.stop()
        print("Spark cluster stopped")
        return 0
    pids = cluster.pids()
    print(f"Spark {cluster.master_url}: " + (", ".join(f"{d} pid {p}" for d, p in pids.items()) or "not running"))
    return 0 if cluster.running() else 1


if __name__ == "__main__":
    sys.exit(main())
