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
import json
import logging
import os
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from devtools.daemons import STATE_FILE, LocalDaemons, free_port, stop_or_status
from sparkvision.platform.settings import PROJECT_DIR

log = logging.getLogger(__name__)

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
class SparkCluster(LocalDaemons):
    """A started (or startable) standalone cluster whose state lives under ``base_dir``."""

    what = "Spark"

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

    def command(self, daemon: str) -> list[str]:
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

    def environment(self, daemon: str) -> dict[str, str]:
        """A clean environment: nothing of this process but ``PASSED_ENV`` (no ``PYTHONPATH``)."""
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
        self.save()
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
            self.check_alive()
            try:
                if self.alive_workers() >= wanted:
                    return
            except (OSError, urllib.error.URLError, ValueError) as exc:
                last_error = exc
            time.sleep(0.5)
        raise TimeoutError(f"Spark master {self.master_url} not ready with {wanted} workers: {last_error}")

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
    if args.command == "start":
        cluster = SparkCluster.load(args.dir) if (Path(args.dir) / STATE_FILE).exists() else None
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
    return stop_or_status(SparkCluster, args.command, args.dir)


if __name__ == "__main__":
    sys.exit(main())
