"""Recording benchmark figures: bench/results/<name>.json and a section of docs/benchmarks.md."""

from __future__ import annotations

import fcntl
import json
import os
import platform
import re
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import psutil

PROJECT_DIR = Path(__file__).resolve().parent.parent
RESULTS_DIR = PROJECT_DIR / "bench" / "results"
BENCHMARKS_MD = PROJECT_DIR / "docs" / "benchmarks.md"
HEAVY_LOCK = Path(os.environ.get("SPARKVISION_HEAVY_LOCK", "/tmp/sparkvision-heavy.lock"))

HEADER = """# Benchmarks

Figures from `make bench` (or `make bench BENCH=<name>`). Each section is rewritten by the
benchmark named in it; both sides of every ratio are measured in the same run, on the machine
named in the row. Raw figures are in `bench/results/<name>.json` (not committed).
"""


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), {psutil.virtual_memory().total / 2**30:.0f} GiB"


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(PROJECT_DIR), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@contextmanager
def heavy():
    """Serialise heavy work (benchmarks, full-data runs) on this machine: timings need quiet cores."""
    HEAVY_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(HEAVY_LOCK, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def record(name: str, rows: list[dict], command: str, details: dict | None = None, notes: str = "") -> dict:
    """Write bench/results/<name>.json and replace the <name> section of docs/benchmarks.md.

    ``rows``: dicts with ``figure`` (what), ``value`` (text with unit) and optional ``ratio``
    (text, e.g. "0.71x baseline (a); target >= 0.6x") and ``target_met`` (bool).
    """
    date = time.strftime("%Y-%m-%d")
    result = {
        "name": name,
        "date": date,
        "machine": machine(),
        "commit": git_commit(),
        "command": command,
        "rows": rows,
        "details": details or {},
        "notes": notes,
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / f"{name}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    table = ["| figure | value | ratio / target | date | machine | commit |", "|---|---|---|---|---|---|"]
    for row in rows:
        met = row.get("target_met")
        mark = "" if met is None else (" ✅" if met else " ❌")
        table.append(
            f"| {row['figure']} | {row['value']} | {row.get('ratio', '')}{mark} | {date} | "
            f"{result['machine']} | {result['commit']} |"
        )
    section = "\n".join(
        [
            f"<!-- bench:{name}:start -->",
            f"## {name}",
            "",
            f"Command: `{command}`",
            "",
            *table,
            "",
            *([notes, ""] if notes else []),
            f"<!-- bench:{name}:end -->",
        ]
    )
    BENCHMARKS_MD.parent.mkdir(parents=True, exist_ok=True)
    with open(RESULTS_DIR / ".benchmarks-md.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else HEADER
        pattern = re.compile(rf"<!-- bench:{re.escape(name)}:start -->.*?<!-- bench:{re.escape(name)}:end -->", re.S)
        text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
        BENCHMARKS_MD.write_text(text)
    print(f"[bench] {name}: " + "; ".join(f"{r['figure']} = {r['value']}" for r in rows))
    return result


def peak_rss_mb(pid: int, interval: float = 0.2):
    """A sampler of the peak resident memory of a process and its children: call .stop() for MB."""
    import threading

    class Sampler:
        def __init__(self) -> None:
            self.peak = 0
            self.per_process: dict[int, int] = {}
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()

        def _run(self) -> None:
            try:
                root = psutil.Process(pid)
            except psutil.NoSuchProcess:
                return
            while not self._stop.is_set():
                try:
                    procs = [root, *root.children(recursive=True)]
                    total = 0
                    for proc in procs:
                        try:
                            rss = proc.memory_info().rss
                        except psutil.NoSuchProcess:
                            continue
                        total += rss
                        self.per_process[proc.pid] = max(self.per_process.get(proc.pid, 0), rss)
                    self.peak = max(self.peak, total)
                except psutil.NoSuchProcess:
                    return
                self._stop.wait(interval)

        def stop(self) -> dict:
            self._stop.set()
            self._thread.join()
            return {
                "peak_total_mb": round(self.peak / 2**20, 1),
                "peak_max_process_mb": round(max(self.per_process.values(), default=0) / 2**20, 1),
            }

    return Sampler()
