"""Ingest benchmark: the whole ``spark-submit spark_jobs/ingest.py`` against plain baselines, in one run.

    python -m bench ingest                                  # make bench BENCH=ingest (holds the heavy lock)
    SPARKVISION_BENCH_INGEST_X100=1 python -m bench ingest  # also 7,000,000 files (long: ~10 min more)

Measured side by side, on the Fashion-MNIST PNG files (70,000) on local disk:

- **floors**: a trivial spark-submit (plain session, one Python task over 10 rows, stop) and this
  project's own job floor (``run_job``: arguments, run config committed, the project's session;
  the ingest's imports; one tiny Python task importing the decoder), each three times, medians.
- **ingest**: the wall time of the whole spark-submit (JVM start, listing, decode, Parquet writes,
  manifest); images/s = files found / wall time; CPU seconds of the process tree; peak resident
  memory of every process (the largest one is reported), also at the end of the listing.
- **(a)**: two plain Python processes over the same files (os.walk, read, cv2.imdecode into one
  uint8 array, one pyarrow Parquet write each), timed as a whole subprocess.
- **(b)**: the original design's loop, one row per ``ParquetWriter.write_table`` (70,000 files).

Then the same ingest on 700,000 files (ten hard links per file under other names) against (a)
on the same files, 7,000,000 files (a hundred links, opt-in) for memory and images/s, and the
70,000 files on a real HDFS (three DataNodes and two replicas, as ``make hdfs-start``; started here)
with their content hash compared, with short-circuit local reads (the project's HDFS) and without.
The HDFS is started for the benchmark, so one ingest runs first, untimed for the ratio (it is
recorded): a NameNode and DataNodes compile their read paths during it, which long-running ones did
long ago. Then the HDFS ratio's two sides alternate (``HDFS_PAIRS`` file:// ingests of the same
files, each followed by the HDFS one) and the ratio is of their medians: a run minutes apart from
the other side measured the machine's drift as much as the readers (the file:// ingest of the
same files took 8.6-13 s in four full runs on one machine).

Sizes for a quick check (not the recorded figures): SPARKVISION_BENCH_INGEST_LIMIT=N (images per
source split), SPARKVISION_BENCH_INGEST_COPIES=10, SPARKVISION_BENCH_INGEST_COPIES_LARGE=100;
SPARKVISION_BENCH_INGEST_X10=0, _HDFS=0, _B=0 leave parts out; SPARKVISION_BENCH_INGEST_HDFS_DATANODES=1
for a single DataNode.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from bench.common import PROJECT_DIR, heavy, record

WORK = PROJECT_DIR / "data" / "bench" / "ingest"
DATASET = "fashion_mnist"


def _env_int(name: str, default: int | None) -> int | None:
    value = os.environ.get(name, "")
    return int(value) if value else default


def _env_flag(name: str, default: bool) -> bool:
    return os.environ.get(name, "1" if default else "0") not in ("0", "", "false")


#: Images per source split of the base drop; None: all (60,000 + 10,000).
LIMIT = _env_int("SPARKVISION_BENCH_INGEST_LIMIT", None)
COPIES = _env_int("SPARKVISION_BENCH_INGEST_COPIES", 10)
COPIES_LARGE = _env_int("SPARKVISION_BENCH_INGEST_COPIES_LARGE", 100)
#: Images per source split on HDFS; unset: the same files as the base drop.
HDFS_LIMIT = _env_int("SPARKVISION_BENCH_INGEST_HDFS_LIMIT", LIMIT)
#: file:// and HDFS ingests of the same files, alternating, for the HDFS ratio (medians of each).
HDFS_PAIRS = 3
#: DataNodes of the benchmark's HDFS (the project's `make hdfs-start` starts 3, with 2 replicas).
HDFS_DATANODES = _env_int("SPARKVISION_BENCH_INGEST_HDFS_DATANODES", 3)
B_SUBSET = 70_000  # all of them: its per-row cost grows with the file (footer)
#: The same driver heap at every size: neither the listing nor any pixel lives in the driver.
DRIVER_MEMORY = os.environ.get("SPARKVISION_BENCH_DRIVER_MEMORY", "512m")
SPARK_CONF = ["--master", "local[2]", "--driver-memory", DRIVER_MEMORY, "--conf", "spark.ui.enabled=false"]
#: Free disk needed before making the 7,000,000 links (links, spill and curated output: ~12 GB).
LARGE_FREE_GB = 20
FLOOR_RUNS = 3
#: The ingest's log line that ends the listing (memory is also sampled up to it).
LISTED = re.compile(r"found (\d+) files")


# -- the baselines, run as child processes: python -m bench.ingest baseline-a|baseline-b ... ------


def _list_files(folder: str) -> list[str]:
    return sorted(os.path.join(d, f) for d, _, names in os.walk(folder) for f in names if not f.startswith(("_", ".")))


def _baseline_a_worker(args: tuple[list[str], str]) -> int:
    import cv2
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    files, out = args
    pixels = np.empty((len(files), 28 * 28), dtype=np.uint8)
    for i, name in enumerate(files):
        with open(name, "rb") as handle:
            data = handle.read()
        pixels[i] = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE).reshape(-1)
    column = pa.FixedSizeListArray.from_arrays(pa.array(pixels.reshape(-1)), 28 * 28)
    pq.write_table(pa.table({"path": files, "pixels": column}), out)
    return len(files)


def baseline_a(folder: str, out_dir: str) -> int:
    """Two processes, each: read + decode its half into one array, one Parquet write."""
    from multiprocessing import get_context

    files = _list_files(folder)
    halves = [(files[0::2], f"{out_dir}/part-0.parquet"), (files[1::2], f"{out_dir}/part-1.parquet")]
    with get_context("fork").Pool(2) as pool:
        return sum(pool.map(_baseline_a_worker, halves))


def baseline_b(folder: str, out_path: str, limit: int) -> int:
    """The original design: one row (the curated schema's columns) per ParquetWriter.write_table."""
    import hashlib

    import cv2
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sparkvision.platform.schema import IMAGES_SCHEMA

    files = _list_files(folder)[:limit]
    labels = sorted({Path(name).parent.name for name in files})
    with pq.ParquetWriter(out_path, IMAGES_SCHEMA) as writer:
        for name in files:
            with open(name, "rb") as handle:
                data = handle.read()
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
            label = Path(name).parent.name
            row = {
                "id": [hashlib.sha1(name.encode()).hexdigest()[:16]],
                "path": [name],
                "label": [label],
                "label_index": [labels.index(label)],
                "source_split": [Path(name).name.split("-")[0]],
                "content_hash": [hashlib.sha256(data).hexdigest()],
                "orig_height": [image.shape[0]],
                "orig_width": [image.shape[1]],
                "orig_channels": [1],
                "pixels": [image.tobytes()],
            }
            writer.write_table(pa.table(row, schema=IMAGES_SCHEMA))
    return len(files)


# -- measurements ---------------------------------------------------------------------------------


class _Memory:
    """Peak resident memory of every process of a tree (sampled every 0.2 s), with a snapshot on demand."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.peaks: dict[int, tuple[int, str]] = {}
        self.cpu: dict[int, tuple[float, str]] = {}
        self.marks: dict[str, dict[int, tuple[int, str]]] = {}
        self._stop = threading.Event()
        self._interval = interval
        self._thread = threading.Thread(target=self._run, args=(pid,), daemon=True)
        self._thread.start()

    def _run(self, pid: int) -> None:
        try:
            root = psutil.Process(pid)
        except psutil.NoSuchProcess:
            return
        while not self._stop.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            for proc in procs:
                try:
                    # a JVM or worker stays one (an ending worker may lose its command line); other
                    # processes are asked again (spark-submit is bash until it execs the JVM)
                    known = self.cpu.get(proc.pid, (0.0, ""))[1]
                    name = known if known in _SETTLED_KINDS else _kind(proc)
                    rss, times = proc.memory_info().rss, proc.cpu_times()
                except psutil.Error:
                    continue
                self.peaks[proc.pid] = (max(rss, self.peaks.get(proc.pid, (0, ""))[0]), name)
                self.cpu[proc.pid] = (times.user + times.system, name)
            self._stop.wait(self._interval)

    def mark(self, name: str) -> None:
        self.marks[name] = dict(self.peaks)

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        result = _summary(self.peaks)
        by_kind: dict[str, float] = {}
        for seconds, name in self.cpu.values():
            by_kind[name] = by_kind.get(name, 0.0) + seconds
        result["cpu_by_process_s"] = {name: round(seconds, 1) for name, seconds in sorted(by_kind.items())}
        for name, peaks in self.marks.items():
            result[name] = _summary(peaks)
        return result


_SETTLED_KINDS = ("jvm", "python worker")


def _kind(proc: psutil.Process) -> str:
    """What a process of the tree is: the JVM, a Python worker or daemon, the driver's Python, ..."""
    command = " ".join(proc.cmdline()[:4])
    if "java" in proc.name():
        return "jvm"
    if "pyspark.daemon" in command or "pyspark.worker" in command:
        return "python worker"
    return proc.name()


def _summary(peaks: dict[int, tuple[int, str]]) -> dict:
    if not peaks:
        return {"peak_max_process_mb": 0.0, "largest_process": "", "processes": 0}
    largest = max(peaks.values())
    return {
        "peak_max_process_mb": round(largest[0] / 2**20, 1),
        "largest_process": largest[1],
        "processes": len(peaks),
        "peak_sum_mb": round(sum(rss for rss, _ in peaks.values()) / 2**20, 1),
    }


def _timed(command: list[str], env: dict | None = None) -> dict:
    """Run a command: wall time, CPU seconds of its process tree, peak memory per process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.Popen(command, cwd=PROJECT_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    memory = _Memory(proc.pid)
    lines: list[str] = []
    listed_at = None
    for raw in proc.stdout:
        line = raw.decode(errors="replace")
        lines.append(line)
        if listed_at is None and LISTED.search(line):
            listed_at = round(time.perf_counter() - started, 2)
            memory.mark("listing")
    proc.wait()
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    peaks = memory.stop()
    out = "".join(lines)
    if proc.returncode != 0:
        raise RuntimeError(f"{command[:3]} failed ({proc.returncode}):\n{out[-4000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result = {"wall_s": round(wall, 2), "cpu_s": round(cpu, 1), **peaks, "output_tail": out[-600:]}
    if listed_at is not None:
        result["listed_after_s"] = listed_at
    return result


def _spark_env() -> dict:
    env = dict(os.environ)
    env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    env.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    return env


def _ingest(
    root: str, version: str, files: int | None = None, conf: tuple[str, ...] = (), env: dict | None = None
) -> dict:
    """The whole spark-submit of one ingest (previous output removed first on file://), with its
    manifest; ``conf``: more spark-submit options, ``env``: more environment."""
    from sparkvision.platform.layout import DatasetPaths

    curated = DatasetPaths(root, DATASET, version).curated
    if root.startswith("file:"):
        shutil.rmtree(curated[len("file://") :], ignore_errors=True)
    events = WORK / "events"
    events.mkdir(parents=True, exist_ok=True)
    before = set(os.listdir(events))
    log_conf = [f"spark.eventLog.dir={events.as_uri()}", "spark.eventLog.enabled=true", "spark.eventLog.compress=false"]
    command = [
        "spark-submit",
        *SPARK_CONF,
        *conf,
        *[x for c in log_conf for x in ("--conf", c)],
        "spark_jobs/ingest.py",
    ]
    command += ["--root", root, f"dataset={DATASET}"]
    started = time.time()
    result = _timed([*command, f"version={version}"], {**_spark_env(), **(env or {})})
    logs = sorted(set(os.listdir(events)) - before)
    if logs:
        result["timeline_s"] = _timeline(events / logs[-1], started, started + result["wall_s"])
    if root.startswith("file:"):
        manifest = json.loads(Path(curated[len("file://") :], "manifest.json").read_text())
        result.update(_from_manifest(manifest))
    elif files is not None:
        result["files"] = files
    result["images_per_s"] = round(result["files"] / result["wall_s"], 1)
    return result


def _from_manifest(manifest: dict) -> dict:
    keys = ("files_found", "accepted", "content_hash", "duration_s", "output_files")
    return {"files": manifest["files_found"], **{f"manifest_{k}": manifest[k] for k in keys if k in manifest}}


def _timeline(event_log: Path, started: float, ended: float) -> dict:
    """Where the wall time of a spark-submit went, from its Spark event log (epoch seconds in).

    JVM and session start (until the application starts), the driver's own work (before the
    first Spark job and between jobs), each ingest phase (its jobs' wall time: the job
    descriptions name the phase, see sparkvision.ingest.run.phase) and the stop.
    """
    from sparkvision.ingest.run import PHASES

    files = sorted(event_log.glob("events_*")) if event_log.is_dir() else [event_log]
    app_start = app_end = None
    jobs: dict[int, dict] = {}
    for name in files:
        for line in name.read_text().splitlines():
            if not line.strip():
                continue
            event = json.loads(line)
            kind = event["Event"]
            if kind == "SparkListenerApplicationStart":
                app_start = event["Timestamp"] / 1000
            elif kind == "SparkListenerApplicationEnd":
                app_end = event["Timestamp"] / 1000
            elif kind == "SparkListenerJobStart":
                description = (event.get("Properties") or {}).get("spark.job.description") or ""
                phase = description.rsplit(": ", 1)[-1] if ": " in description else ""
                jobs[event["Job ID"]] = {"start": event["Submission Time"] / 1000, "phase": phase}
            elif kind == "SparkListenerJobEnd" and event["Job ID"] in jobs:
                jobs[event["Job ID"]]["end"] = event["Completion Time"] / 1000
    if app_start is None:
        return {}
    timeline = {"jvm_and_session_start": app_start - started}
    busy_until = app_start
    driver = 0.0
    for job in sorted(jobs.values(), key=lambda j: j["start"]):
        phase = job["phase"] if job["phase"] in PHASES else "other jobs"
        end = job.get("end", job["start"])
        driver += max(0.0, job["start"] - busy_until)
        timeline[phase] = timeline.get(phase, 0.0) + max(0.0, end - max(job["start"], busy_until))
        busy_until = max(busy_until, end)
    timeline["driver_between_jobs"] = driver + max(0.0, (app_end or busy_until) - busy_until)
    timeline["stop_and_exit"] = max(0.0, ended - (app_end or busy_until))
    timeline["jobs"] = len(jobs)
    return {key: round(value, 2) if isinstance(value, float) else value for key, value in timeline.items()}


_TRIVIAL = """\
from pyspark.sql import SparkSession

spark = SparkSession.builder.appName("trivial").getOrCreate()
print(spark.range(0, 10, 1, 1).mapInArrow(lambda it: it, "id long").count())
spark.stop()
"""

_FLOOR = '''\
"""The project's job floor: run_job (arguments, run config, session), the ingest's imports, one tiny task."""

import sys

from sparkvision.config.cli import run_job
from sparkvision.ingest import run  # noqa: F401  (the ingest job's imports)


def _task(batches):
    from sparkvision.ingest import decode  # noqa: F401  (what a decode task imports)

    yield from batches


def work(spark, config):
    return f"{spark.range(0, 10, 1, 1).mapInArrow(_task, 'id long').count()} rows"


if __name__ == "__main__":
    sys.exit(run_job("floor", __doc__, work))
'''


def _floors() -> dict:
    """The trivial spark-submit and the project's job floor, alternating, FLOOR_RUNS times each."""
    trivial, floor = WORK / "trivial_job.py", WORK / "floor_job.py"
    trivial.write_text(_TRIVIAL)
    floor.write_text(_FLOOR)
    runs: dict[str, list[dict]] = {"trivial": [], "project": []}
    for _ in range(FLOOR_RUNS):
        runs["trivial"].append(_timed(["spark-submit", *SPARK_CONF, str(trivial)], _spark_env()))
        command = ["spark-submit", *SPARK_CONF, str(floor), "--root", WORK.as_uri(), "version=floor"]
        runs["project"].append(_timed(command, _spark_env()))
    result = {}
    for name, measured in runs.items():
        result[name] = {
            "wall_s": round(statistics.median(r["wall_s"] for r in measured), 2),
            "cpu_s": round(statistics.median(r["cpu_s"] for r in measured), 1),
            "walls": [r["wall_s"] for r in measured],
            "peak_max_process_mb": max(r["peak_max_process_mb"] for r in measured),
        }
    return result


def _prepare_local(root: str) -> Path:
    from devtools.rawdrop import lay_out

    version = "v1" if LIMIT is None else f"v1-{LIMIT}"
    lay_out(root, DATASET, version, limit=LIMIT)
    return WORK / "raw" / DATASET / version


def _prepare_copies(source: Path, copies: int) -> Path:
    """``copies`` hard links of every file under other names (same bytes, separate files)."""
    target = source.with_name(f"{source.name}-x{copies}")
    if (target / "_SUCCESS").exists():
        return target
    shutil.rmtree(target, ignore_errors=True)
    for label in sorted(p for p in source.iterdir() if p.is_dir()):
        (target / label.name).mkdir(parents=True)
        for item in label.iterdir():
            for copy in range(copies):
                os.link(item, target / label.name / f"c{copy}-{item.name}")
    (target / "_SUCCESS").touch()
    return target


def _free_gb(path: Path) -> float:
    return shutil.disk_usage(path).free / 2**30


def _daemons_cpu(cluster) -> float:
    """CPU seconds the cluster's daemons (NameNode, DataNodes) have used so far."""
    return sum(sum(psutil.Process(pid).cpu_times()[:2]) for pid in cluster.pids().values())


def _hdfs_ingest(limit: int | None, local_hash: str | None, local=None) -> dict:
    """The ingest with its root on a fresh HDFS of the project's kind (``HDFS_DATANODES`` local
    DataNodes, short-circuit reads on), ``limit`` images per source split, after a first ingest of
    the same files (``details["first_run"]``: the daemons' code compiles during it): the median
    of ``HDFS_PAIRS`` runs, each after a run of ``local()`` (the file:// ingest of the same files,
    when given; its median run in ``"local"``); then the same ingest with short-circuit reads off
    (``details["without_short_circuit"]``). ``daemons_cpu_s``: the NameNode's and DataNodes' CPU
    during each."""
    from pyspark.sql import SparkSession

    from devtools.hdfs_cluster import with_free_ports
    from devtools.rawdrop import lay_out
    from sparkvision.platform.layout import DatasetPaths
    from sparkvision.platform.storage import HadoopFS

    base = Path("/tmp/sparkvision-bench-hdfs")
    shutil.rmtree(base, ignore_errors=True)
    replication = min(2, HDFS_DATANODES)
    cluster = with_free_ports(str(base), datanodes=HDFS_DATANODES, replication=replication)
    cluster.start()
    # The cluster's replication and a short completeFile retry (with more retries than the
    # default 5: under load a DataNode's block report can take longer than 5 + 10 + ... + 80 ms).
    spark = (
        SparkSession.builder.master("local[1]")
        .config("spark.ui.enabled", "false")
        .config("spark.hadoop.dfs.replication", str(replication))
        .config("spark.hadoop.dfs.client.block.write.locateFollowingBlock.initial.delay.ms", "5")
        .config("spark.hadoop.dfs.client.block.write.locateFollowingBlock.retries", "12")
        .getOrCreate()
    )
    try:
        fs = HadoopFS(spark)
        root = f"{cluster.uri}/bench"
        curated = DatasetPaths(root, DATASET, "v1").curated
        started = time.perf_counter()
        lay_out(root, DATASET, "v1", limit=limit)
        copy_s = time.perf_counter() - started
        files = 70_000 if limit is None else 2 * limit
        # The jobs' Hadoop client reads the cluster's client configuration, as `make hdfs-start` says.
        env = {"HADOOP_CONF_DIR": str(cluster.client_conf_dir.resolve())}

        def timed(conf: tuple[str, ...] = ()) -> dict:
            daemons = _daemons_cpu(cluster)
            run = _ingest(root, "v1", files, conf=conf, env=env)
            run["daemons_cpu_s"] = round(_daemons_cpu(cluster) - daemons, 1)
            run.update(_from_manifest(fs.read_json(f"{curated}/manifest.json")))
            fs.delete(curated)
            return run

        first = timed()
        pairs = [(local() if local else None, timed()) for _ in range(HDFS_PAIRS)]
        result = _median_run([on_hdfs for _, on_hdfs in pairs])
        result["walls_s"] = [on_hdfs["wall_s"] for _, on_hdfs in pairs]
        if local:
            result["local"] = _median_run([on_local for on_local, _ in pairs])
            result["local"]["walls_s"] = [on_local["wall_s"] for on_local, _ in pairs]
        result["first_run"] = first
        result["without_short_circuit"] = timed(("--conf", "spark.hadoop.dfs.client.read.shortcircuit=false"))
        result.update(copy_to_hdfs_s=round(copy_s, 1), datanodes=HDFS_DATANODES, replication=replication)
        result["same_content_hash"] = local_hash is not None and result["manifest_content_hash"] == local_hash
        return result
    finally:
        spark.stop()
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


def _median_run(runs: list[dict]) -> dict:
    """The run of median wall time (an odd number of runs)."""
    return sorted(runs, key=lambda run: run["wall_s"])[len(runs) // 2]


def _baseline_a(folder: Path, scratch: Path, files: int) -> dict:
    result = _timed([sys.executable, "-m", "bench.ingest", "baseline-a", str(folder), str(scratch)])
    result["images_per_s"] = round(files / result["wall_s"], 1)
    return result


def _warm(folder: Path) -> None:
    """Read every file once so that every contender reads the same page-cached files."""
    for name in _list_files(str(folder)):
        Path(name).read_bytes()


def _profile(result: dict) -> str:
    """Where the wall time and the CPU of one run went (docs/ingest.md explains the phases)."""
    timeline = result.get("timeline_s", {})
    order = ["jvm_and_session_start", "listing", "decode", "duplicates", "statistics", "write", "other jobs"]
    order += ["driver_between_jobs", "stop_and_exit"]
    wall = ", ".join(f"{key.replace('_', ' ')} {timeline[key]}" for key in order if key in timeline)
    cpu = ", ".join(f"{kind} {seconds}" for kind, seconds in result.get("cpu_by_process_s", {}).items() if seconds)
    return f"wall s: {wall} ({timeline.get('jobs', '?')} Spark jobs); CPU s: {cpu}"


def _mem(result: dict) -> str:
    text = f"largest process {result['peak_max_process_mb']} MB ({result['largest_process']})"
    if "listing" in result:
        text += f"; by the end of the listing {result['listing']['peak_max_process_mb']} MB"
    return text


def run(argv: list[str]) -> dict:
    """Measure and record; the caller (``python -m bench``) holds the heavy lock."""
    root = WORK.as_uri()
    WORK.mkdir(parents=True, exist_ok=True)
    base = _prepare_local(root)
    n = len(_list_files(str(base)))
    scratch = WORK / "baselines"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    _warm(base)
    command = "python -m bench ingest  (make bench BENCH=ingest)"
    details: dict = {
        "spark_submit_opts": os.environ.get("SPARK_SUBMIT_OPTS", ""),
        "driver_memory": DRIVER_MEMORY,
        "load_before": os.getloadavg(),
    }
    rows: list[dict] = []
    notes = (
        "Every figure of a row comes from this one run. Wall times are whole commands (interpreter or JVM "
        "start included; spark-submit with SPARK_SUBMIT_OPTS from scripts/env.sh: the class-data-sharing "
        "archive of scripts/spark_cds.sh, quick JIT only, serial GC growing its heap below 20% free); "
        f"driver heap {DRIVER_MEMORY} at every size; "
        "local[2]. "
        "The large drops hold hard links (other names, the same bytes), so every image is a duplicate of the "
        "others of its group: the ingest flags them all. Peak memory is sampled every 0.2 s per process "
        "(JVM, Python driver, daemon and workers); 'by the end of the listing' is the peak up to the "
        "ingest's 'found N files' log line. Floors are medians of three alternating runs."
    )

    floors = _floors()
    details["floors"] = floors
    ratio = floors["project"]["wall_s"] / floors["trivial"]["wall_s"]
    rows.append(
        {
            "figure": "floor: trivial spark-submit (plain session, one Python task of 10 rows) / "
            "this project's job floor (run_job, run config, the ingest's imports, one tiny task)",
            "value": f"{floors['trivial']['wall_s']} s / {floors['project']['wall_s']} s "
            f"(CPU {floors['trivial']['cpu_s']} / {floors['project']['cpu_s']} s)",
            "ratio": f"{ratio:.2f}x the trivial floor, target <= 1.2x",
            "target_met": ratio <= 1.2,
        }
    )
    record("ingest", rows, command, details, notes)

    ingest = _ingest(root, base.name)
    a = _baseline_a(base, scratch, n)
    details.update({"ingest": ingest, "baseline_a": a})
    rows += [
        {
            "figure": f"ingest, {n:,} PNG on file:// (whole spark-submit)",
            "value": f"{ingest['images_per_s']:,.0f} images/s ({ingest['wall_s']} s; in-job "
            f"{ingest['manifest_duration_s']} s; CPU {ingest['cpu_s']} s)",
            "ratio": f"{ingest['images_per_s'] / a['images_per_s']:.2f}x (a)",
        },
        {
            "figure": f"(a) two-process Python: read + cv2.imdecode + one Parquet write, {n:,} files",
            "value": f"{a['images_per_s']:,.0f} images/s ({a['wall_s']} s; CPU {a['cpu_s']} s)",
        },
        {"figure": f"ingest peak memory, {n:,} files", "value": _mem(ingest)},
        {"figure": f"where the ingest's time went, {n:,} files", "value": _profile(ingest)},
    ]
    if _env_flag("SPARKVISION_BENCH_INGEST_B", True):
        b = _timed([sys.executable, "-m", "bench.ingest", "baseline-b", str(base), str(scratch / "b.parquet")])
        b["images_per_s"] = round(min(B_SUBSET, n) / b["wall_s"], 1)
        details["baseline_b"] = b
        rows.append(
            {
                "figure": f"(b) one row per ParquetWriter.write_table ({min(B_SUBSET, n):,} files)",
                "value": f"{b['images_per_s']:,.0f} images/s ({b['wall_s']} s)",
                "ratio": f"ingest {ingest['images_per_s'] / b['images_per_s']:.1f}x (b)",
            }
        )
    record("ingest", rows, command, details, notes)

    x10 = None
    if _env_flag("SPARKVISION_BENCH_INGEST_X10", True):
        folder = _prepare_copies(base, COPIES)
        _warm(folder)
        x10 = _ingest(root, folder.name)
        a10 = _baseline_a(folder, scratch, x10["files"])
        details.update({"ingest_x10": x10, "baseline_a_x10": a10})
        vs_a = x10["images_per_s"] / a10["images_per_s"]
        rows += [
            {
                "figure": f"ingest, {x10['files']:,} files ({COPIES} links per file) on file://",
                "value": f"{x10['images_per_s']:,.0f} images/s ({x10['wall_s']} s; CPU {x10['cpu_s']} s) vs (a) "
                f"{a10['images_per_s']:,.0f} images/s ({a10['wall_s']} s; CPU {a10['cpu_s']} s)",
                "ratio": f"{vs_a:.2f}x baseline (a) on the same files, target >= 0.8x",
                "target_met": vs_a >= 0.8,
            },
            {"figure": f"ingest peak memory, {x10['files']:,} files", "value": _mem(x10)},
            {"figure": f"where the ingest's time went, {x10['files']:,} files", "value": _profile(x10)},
        ]
        record("ingest", rows, command, details, notes)

    if x10 is not None and _env_flag("SPARKVISION_BENCH_INGEST_X100", False):
        free = _free_gb(WORK)
        details["free_gb_before_x100"] = round(free, 1)
        if free < LARGE_FREE_GB:
            rows.append({"figure": f"ingest, {COPIES_LARGE} links per file", "value": f"skipped: {free:.0f} GB free"})
        else:
            folder = _prepare_copies(base, COPIES_LARGE)
            _warm(folder)
            large = _ingest(root, folder.name)
            details["ingest_x100"] = large
            growth = large["peak_max_process_mb"] / max(x10["peak_max_process_mb"], 1)
            listing = large["listing"]["peak_max_process_mb"] / max(x10["listing"]["peak_max_process_mb"], 1)
            rows += [
                {
                    "figure": f"ingest, {large['files']:,} files ({COPIES_LARGE} links per file) on file://",
                    "value": f"{large['images_per_s']:,.0f} images/s ({large['wall_s']} s; CPU {large['cpu_s']} s)",
                },
                {
                    "figure": f"ingest peak memory, {large['files']:,} against {x10['files']:,} files",
                    "value": _mem(large),
                    "ratio": f"{growth:.2f}x (listing: {listing:.2f}x) the {x10['files']:,}-file run, target <= 1.1x",
                    "target_met": growth <= 1.1 and listing <= 1.1,
                },
            ]
            shutil.rmtree(WORK / "curated" / DATASET / folder.name, ignore_errors=True)
        record("ingest", rows, command, details, notes)

    if _env_flag("SPARKVISION_BENCH_INGEST_HDFS", True):
        same_files = HDFS_LIMIT == LIMIT
        hdfs = _hdfs_ingest(
            HDFS_LIMIT,
            ingest.get("manifest_content_hash") if same_files else None,
            (lambda: _ingest(root, base.name)) if same_files else None,
        )
        details["ingest_hdfs"] = hdfs
        local = hdfs.get("local", ingest)
        vs_local = hdfs["images_per_s"] / local["images_per_s"]
        without, first = hdfs["without_short_circuit"], hdfs["first_run"]
        where = f"{hdfs['datanodes']} local DataNodes, {hdfs['replication']} replicas"
        walls = ", ".join(map(str, hdfs["walls_s"]))
        local_walls = ", ".join(map(str, local.get("walls_s", [local["wall_s"]])))
        rows += [
            {
                "figure": f"ingest, {hdfs['files']:,} PNG on HDFS ({where}, short-circuit reads), against file:// "
                f"(medians of {HDFS_PAIRS} alternating runs of each)",
                "value": f"{hdfs['images_per_s']:,.0f} images/s ({hdfs['wall_s']} s of {walls}; CPU {hdfs['cpu_s']} s, "
                f"NameNode and DataNodes {hdfs['daemons_cpu_s']} s; {_mem(hdfs)}; copy in: {hdfs['copy_to_hdfs_s']} s) "
                f"vs file:// {local['images_per_s']:,.0f} images/s ({local['wall_s']} s of {local_walls})",
                "ratio": f"{vs_local:.2f}x file://, target >= 0.5x",
                "target_met": vs_local >= 0.5 if same_files else None,
            },
            {
                "figure": "the first ingest on the just-started HDFS, before the ones above (untimed for the target)",
                "value": f"{first['images_per_s']:,.0f} images/s ({first['wall_s']} s; CPU {first['cpu_s']} s, "
                f"NameNode and DataNodes {first['daemons_cpu_s']} s)",
                "ratio": f"{first['images_per_s'] / local['images_per_s']:.2f}x file://",
            },
            {
                "figure": "the same HDFS ingest with short-circuit reads off (every block through a DataNode)",
                "value": f"{without['images_per_s']:,.0f} images/s ({without['wall_s']} s; CPU {without['cpu_s']} s, "
                f"NameNode and DataNodes {without['daemons_cpu_s']} s)",
                "ratio": f"{without['images_per_s'] / local['images_per_s']:.2f}x file://",
            },
        ]
        rows.append({"figure": f"where the HDFS ingest's time went, {hdfs['files']:,} files", "value": _profile(hdfs)})
        if same_files:
            rows.append(
                {
                    "figure": "curated content hash, HDFS reader against file:// reader (same files)",
                    "value": f"{hdfs['manifest_content_hash'][:16]}... vs {ingest['manifest_content_hash'][:16]}...",
                    "ratio": "identical" if hdfs["same_content_hash"] else "DIFFERENT",
                    "target_met": hdfs["same_content_hash"],
                }
            )
    details["load_after"] = os.getloadavg()
    return record("ingest", rows, command, details, notes)


def main(argv: list[str]) -> int:
    if argv[:1] == ["baseline-a"]:
        print(baseline_a(argv[1], argv[2]))
    elif argv[:1] == ["baseline-b"]:
        print(baseline_b(argv[1], argv[2], B_SUBSET))
    else:
        with heavy():
            run(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
