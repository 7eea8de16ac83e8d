"""Processes started in sessions of their own, and stopping every process of those sessions.

A component started with ``start_new_session=True`` leads a session; whatever it starts stays in
that session unless it calls ``setsid`` itself, also children that move to process groups of
their own (Airflow runs each task in a new process group, spark-submit's JVM and Spark's Python
workers follow). Stopping "by PID, nothing left behind" is therefore: signal the leader, then
every process still in its session, and check the session is empty.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Iterable
from pathlib import Path


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def session_members(sessions: Iterable[int]) -> list[int]:
    """Live processes (not this one) whose session id is one of ``sessions``."""
    wanted = set(sessions)
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        pid = int(entry.name)
        try:
            if os.getsid(pid) in wanted and alive(pid):
                members.append(pid)
        except (ProcessLookupError, PermissionError):
            continue
    return sorted(members)


def describe(pids: Iterable[int]) -> list[str]:
    """``pid: command line`` for each of ``pids`` (for messages about what is left)."""
    lines = []
    for pid in pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            cmdline = "?"
        lines.append(f"{pid}: {cmdline.strip()[:160]}")
    return lines


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def wait_gone(sessions: Iterable[int], timeout: float) -> list[int]:
    """Wait up to ``timeout`` seconds for the sessions to empty; return who is still there."""
    sessions = list(sessions)
    deadline = time.monotonic() + timeout
    while (left := session_members(sessions)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def stop_session(
    leader: int, first: signal.Signals = signal.SIGTERM, grace: float = 20.0, repeat: float = 5.0
) -> list[int]:
    """Stop the session led by ``leader``: ``first`` to the leader (again every ``repeat`` seconds:
    Airflow's scheduler can lose a SIGTERM that lands while the interpreter runs a garbage-collection
    callback), then SIGTERM and SIGKILL to every member still there after ``grace`` seconds.

    Returns the PIDs still alive at the end (empty when the session is gone).
    """
    deadline = time.monotonic() + grace
    left = session_members([leader])
    while left and time.monotonic() < deadline:
        leader_alive = alive(leader)
        if leader_alive:
            _signal(leader, first)
        left = wait_gone([leader], min(repeat, max(deadline - time.monotonic(), 0)))
        if not leader_alive:
            break  # what the leader left behind gets SIGTERM now
    if left:
        for pid in left:
            _signal(pid, signal.SIGTERM)
        left = wait_gone([leader], 5.0)
    for pid in left:
        _signal(pid, signal.SIGKILL)
    return wait_gone([leader], 5.0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
