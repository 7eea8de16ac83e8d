"""`airflow standalone` (SQLite, the demo's Airflow) that Ctrl-C really stops, workers included.

``make airflow-standalone`` runs this. Airflow's standalone forwards Ctrl-C to its components as
SIGTERM, and its scheduler then leaves the LocalExecutor's workers behind (or, started from a
script, ignores SIGINT altogether). Here standalone runs in a session of its own: the first Ctrl-C
(or SIGTERM) asks it to stop, and whatever of its session is still there after ``--grace``
seconds gets SIGTERM, then SIGKILL. The command returns once no process of the session is left::

    python -m devtools.standalone            # Ctrl-C to stop
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import threading

from devtools.procs import describe, stop_session


def run(grace: float = 15.0, command: list[str] | None = None) -> int:
    command = command or [sys.executable, "-m", "airflow", "standalone"]
    # Its own session: the terminal's Ctrl-C reaches only this wrapper, which stops it in order.
    proc = subprocess.Popen(command, start_new_session=True)
    stop = threading.Event()

    def request_stop(signum, frame) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, request_stop)
    while proc.poll() is None and not stop.wait(0.5):
        pass
    if stop.is_set():
        print("\nstopping Airflow standalone (its scheduler, workers and servers)...", flush=True)
    # standalone turns SIGINT into an orderly stop of its components; what is left then goes.
    left = stop_session(proc.pid, first=signal.SIGINT, grace=grace, repeat=grace)
    proc.wait()
    if left:
        print("could not stop:\n" + "\n".join(describe(left)), file=sys.stderr)
        return 1
    print("Airflow standalone stopped; nothing left running.", flush=True)
    return 0 if stop.is_set() else proc.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grace", type=float, default=15.0, help="seconds standalone gets to stop by itself")
    args = parser.parse_args(argv)
    return run(args.grace)


if __name__ == "__main__":
    sys.exit(main())
