"""The ingest benchmark's process sampler: each process's memory and CPU under what it became."""

from __future__ import annotations

import subprocess
import sys

from bench.ingest import _Memory


def test_a_process_that_execs_is_counted_as_what_it_became():
    # spark-submit is a script that execs the JVM: one process, first "bash", then "jvm"
    becomes = "import time; time.sleep(1.5)"
    script = (
        "import os, sys, time; time.sleep(0.6); "
        f"os.execv(sys.executable, [sys.executable, '-c', {becomes!r}, sys.argv[2]])"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, "then", "pyspark.daemon"])  # 4th word: "then"
    memory = _Memory(proc.pid, interval=0.05)
    proc.wait()
    result = memory.stop()
    assert set(result["cpu_by_process_s"]) == {"python worker"}
    assert result["largest_process"] == "python worker"
