"""What the local clusters (HDFS, Spark) share: daemons in process groups of their own, by PID.

A cluster class (a dataclass) names its daemons and how to start one; this base keeps their PID
files and logs under ``base_dir``, starts each in a new session (its process group: a Spark
worker's executors go with it), stops them by group (SIGTERM, SIGKILL after a timeout) and
records the cluster's description for ``load``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import time
from dataclasses import asdict
from pathlib import Path

log = logging.getLogger(__name__)

STATE_FILE = "cluster.json"


def free_port() -> int:
    """A TCP port free on loopback now (for daemons started next)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child still answers kill(0); treat it as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return True


class LocalDaemons:
    """The lifecycle of a local cluster's daemons; subclasses are dataclasses with ``base_dir``."""

    #: What the messages call the cluster ("HDFS", "Spark").
    what = "cluster"
    base_dir: str

    @property
    def daemons(self) -> dict[str, str]:
        """Daemon name -> main class, in start order."""
        raise NotImplementedError

    def command(self, daemon: str) -> list[str]:
        raise NotImplementedError

    def environment(self, daemon: str) -> dict[str, str] | None:
        """The daemon's environment (None: this process's)."""
        return None

    @property
    def _base(self) -> Path:
        return Path(self.base_dir)

    def _pid_file(self, daemon: str) -> Path:
        return self._base / f"{daemon}.pid"

    def log_file(self, daemon: str) -> Path:
        """Where a daemon's output goes (``logs/<daemon>.log``)."""
        return self._base / "logs" / f"{daemon}.log"

    def save(self) -> None:
        """Record this description for ``load`` (make targets start and stop in different processes)."""
        (self._base / "logs").mkdir(parents=True, exist_ok=True)
        (self._base / STATE_FILE).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, base_dir: str):
        """The cluster recorded in ``base_dir`` by an earlier start."""
        recorded = json.loads((Path(base_dir) / STATE_FILE).read_text())
        return cls(**{key: value for key, value in recorded.items() if key in cls.__dataclass_fields__})

    def start_daemon(self, daemon: str) -> int:
        """Start one daemon in a process group of its own (again, after ``kill``); return its PID."""
        with open(self.log_file(daemon), "ab") as out:
            proc = subprocess.Popen(
                self.command(daemon),
                env=self.environment(daemon),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._pid_file(daemon).write_text(str(proc.pid))
        return proc.pid

    def kill(self, daemon: str) -> int:
        """SIGKILL one daemon and its process group (a machine lost, for the fault tests); its PID."""
        pid = int(self._pid_file(daemon).read_text())
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        while alive(pid):
            time.sleep(0.05)
        return pid

    def pids(self) -> dict[str, int]:
        """The PIDs of this cluster's daemons that are alive."""
        found = {}
        for daemon in self.daemons:
            pid_file = self._pid_file(daemon)
            if pid_file.exists() and alive(pid := int(pid_file.read_text())):
                found[daemon] = pid
        return found

    def running(self) -> bool:
        return len(self.pids()) == len(self.daemons)

    def check_alive(self) -> None:
        """Raise when a started daemon has exited (while waiting for the cluster to be ready)."""
        for daemon in self.daemons:
            pid_file = self._pid_file(daemon)
            if pid_file.exists() and not alive(int(pid_file.read_text())):
                raise RuntimeError(f"{self.what} {daemon} exited; see {self.log_file(daemon)}")

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the daemons, last started first: SIGTERM to each process group, SIGKILL after ``timeout``."""
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
                os.killpg(pid, signal.SIGKILL)  # what is left of the group (a worker's executors)
            pid_file.unlink()
            log.info("stopped %s %s (pid %d)", self.what, daemon, pid)


def stop_or_status(cls: type[LocalDaemons], command: str, folder: str) -> int:
    """The ``stop`` and ``status`` commands of a cluster CLI: exit status 0 when done or running."""
    if not (Path(folder) / STATE_FILE).exists():
        print(f"no {cls.what} recorded in {folder}")
        return 0 if command == "stop" else 1
    cluster = cls.load(folder)
    if command == "stop":
        cluster.stop()
        print(f"{cls.what} stopped")
        return 0
    pids = cluster.pids()
    print(f"{cls.what} in {folder}: " + (", ".join(f"{d} pid {p}" for d, p in pids.items()) or "not running"))
    return 0 if cluster.running() else 1
